"""The analyst's API inside the confidential kernel (``import workbench as wb``).

Each call resolves a name in the data catalog, has the kernel state release the keys it
needs (attestation, policy, the analyst's confirmation), and decrypts in memory only.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.kernel.catalog import Entry
from workbench.kernel.keysource import EntryKeySource
from workbench.kernel.report import AttestationReport
from workbench.kernel.state import current_state
from workbench.sealing.keys import KeySource

if TYPE_CHECKING:
    import pandas as pd

    from workbench.inference.arrays import ArrayBatch
    from workbench.inference.model import Model

# workbench.inference.batches.DEFAULT_BATCH_ROWS, named here too: importing that module
# (numpy, pandas, pyarrow: half a second) would make every kernel's first wb.attest() pay
# for data libraries it does not use. A test keeps the two equal.
DEFAULT_BATCH_ROWS = 65_536


def attest(*, resources: Sequence[str] | None = None) -> AttestationReport:
    """Attest now: evidence to the broker, its verified verdict back, shown as a report.

    The session names ``resources`` (default: every resource in the catalog), so the
    report carries the broker's verdict for each.
    """
    return current_state().attest(resources)


def _checked_columns(entry: Entry, keys: EntryKeySource,
                     columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    from workbench.sealing.table import sealed_columns

    available = sealed_columns(entry.path, keys)
    unknown = [c for c in columns if c not in available]
    if unknown:
        raise WorkbenchError(f"dataset '{entry.name}' has no column(s) {', '.join(unknown)} "
                             f"(columns: {', '.join(available)})")
    return list(columns)


def open_dataset(name: str, columns: Sequence[str] | None = None, *,
                 approve: bool = False) -> pd.DataFrame:
    """The sealed dataset ``name`` as a DataFrame, decrypted in memory.

    Only the keys the requested columns need are released: asking for clinical columns
    alone never releases the identifier (PHI) key.
    """
    from workbench.sealing.table import open_table

    state = current_state()
    entry = state.catalog().get("dataset", name)
    keys = EntryKeySource(state, entry, approve=approve)
    return open_table(entry.path, keys, columns=_checked_columns(entry, keys, columns))


class DatasetScan:
    """Record batches of a sealed dataset; ``num_rows`` and ``schema`` are known up front.

    Row groups are read one at a time (``sealing.table.open_parquet``), so memory follows
    ``batch_rows``.
    """

    def __init__(self, entry: Entry, keys: KeySource, columns: list[str] | None,
                 batch_rows: int) -> None:
        import pyarrow as pa

        from workbench.sealing.table import open_parquet

        parquet = open_parquet(entry.path, keys)  # checks the file, releases the footer key
        self.num_rows = parquet.metadata.num_rows
        schema = parquet.schema_arrow
        self.schema = schema if columns is None else pa.schema([schema.field(c)
                                                                for c in columns])
        self._entry, self._keys, self._columns, self._batch_rows = entry, keys, columns, batch_rows

    def __iter__(self) -> Iterator[Any]:
        from workbench.sealing.table import scan_table

        yield from scan_table(self._entry.path, self._keys, batch_rows=self._batch_rows,
                              columns=self._columns)

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (f"<DatasetScan '{self._entry.name}': {self.num_rows} rows in batches of "
                f"{self._batch_rows}>")


def scan_dataset(name: str, batch_rows: int = DEFAULT_BATCH_ROWS,
                 columns: Sequence[str] | None = None, *, approve: bool = False) -> DatasetScan:
    """Iterate the sealed dataset ``name`` in record batches of at most ``batch_rows``."""
    if batch_rows < 1:
        raise WorkbenchError("batch_rows must be at least 1")
    state = current_state()
    entry = state.catalog().get("dataset", name)
    keys = EntryKeySource(state, entry, approve=approve)
    return DatasetScan(entry, keys, _checked_columns(entry, keys, columns), batch_rows)


class ImageScan:
    """``ArrayBatch`` batches of a sealed image set: array ``pixels`` (rows, 1, H, W) float32
    in modality units (HU for CT), and ``frame`` with the rows' fields.

    ``num_rows``, ``shape`` and ``columns`` are known up front (from the footer, with the
    clinical key alone). Row groups are read one at a time, so memory follows
    ``batch_rows``; by default a batch holds about 32 MB of pixels. Each batch's pixels are
    a read-only view of the decrypted buffer (copy before changing them in place).
    """

    def __init__(self, entry: Entry, keys: KeySource, columns: Sequence[str] | None,
                 batch_rows: int | None) -> None:
        from workbench.sealing.images import (
            checked_columns,
            default_batch_rows,
            image_set_info,
        )

        info = image_set_info(entry.path, keys)  # checks the file, releases the footer key
        self.columns = checked_columns(info, columns, what=f"image set '{entry.name}'")
        self.num_rows = info.rows
        self.shape = info.shape
        self.batch_rows = batch_rows or default_batch_rows(info.shape)
        self.entry, self.keys, self.info = entry, keys, info

    def __iter__(self) -> Iterator[ArrayBatch]:
        from workbench.inference.arrays import ArrayBatch
        from workbench.sealing.images import scan_images

        for pixels, frame in scan_images(self.entry.path, self.keys,
                                         batch_rows=self.batch_rows, columns=self.columns):
            yield ArrayBatch({"pixels": pixels}, frame)

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        height, width = self.shape
        return (f"<ImageScan '{self.entry.name}': {self.num_rows} images of {height}x{width} "
                f"in batches of {self.batch_rows}>")


def _image_entry(name: str, approve: bool) -> tuple[Entry, EntryKeySource]:
    state = current_state()
    entry = state.catalog().get("images", name)
    return entry, EntryKeySource(state, entry, approve=approve)


def scan_images(name: str, batch_rows: int | None = None,
                columns: Sequence[str] | None = None, *, approve: bool = False) -> ImageScan:
    """Iterate the sealed image set ``name`` in ``ArrayBatch`` batches of ``batch_rows``.

    ``columns`` picks the row fields in each batch's ``frame`` (default: every clinical
    field, never the identifiers); naming an identifier column releases the PHI key.
    """
    if batch_rows is not None and batch_rows < 1:
        raise WorkbenchError("batch_rows must be at least 1")
    entry, keys = _image_entry(name, approve)
    return ImageScan(entry, keys, columns, batch_rows)


def open_images(name: str, columns: Sequence[str] | None = None, *,
                approve: bool = False) -> ArrayBatch:
    """The sealed image set ``name`` in memory, as one ``ArrayBatch`` (see ``scan_images``)."""
    from workbench.inference.arrays import ArrayBatch
    from workbench.sealing.images import open_images as read_images

    entry, keys = _image_entry(name, approve)
    scan = ImageScan(entry, keys, columns, None)  # checks the file and the columns first
    pixels, frame = read_images(entry.path, keys, scan.columns)
    return ArrayBatch({"pixels": pixels}, frame)


def load_model(name: str, *, approve: bool = False) -> Model:
    """The sealed ONNX model ``name``, decrypted in memory, ready to ``predict``."""
    from workbench.inference.model import load_sealed_model

    state = current_state()
    entry = state.catalog().get("model", name)
    return load_sealed_model(entry.path, name, EntryKeySource(state, entry, approve=approve))


class CatalogView:
    def __init__(self, entries: list[Entry], source: str) -> None:
        self.entries = entries
        self.source = source

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{"kind": e.kind, "name": e.name, "file": e.path.name,
                              "broker resources": ", ".join(e.resources),
                              "description": e.description} for e in self.entries])

    def __repr__(self) -> str:
        return f"catalog {self.source}\n{self.to_frame().to_string(index=False)}"

    def _repr_html_(self) -> str:
        return (f"<p>catalog <code>{html.escape(self.source)}</code></p>"
                + self.to_frame().to_html(index=False))


def catalog() -> CatalogView:
    """What this kernel can open (from the data owner's catalog next to the sealed files)."""
    found = current_state().catalog()
    return CatalogView(found.entries(), str(found.path))


def forget() -> None:
    """Drop every released key and the broker session (the next call attests again)."""
    current_state().forget()


def status() -> dict[str, Any]:
    """The kernel's runtime, broker, public key and releases (what the lab extension sees)."""
    return current_state().status()
