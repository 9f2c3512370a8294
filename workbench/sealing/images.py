"""Sealed image sets: Parquet with modular encryption, one 2-D image per row.

The same format and keys as sealed tables (``workbench.sealing.table``): AES_GCM_V1, an
encrypted footer, and two master keys per set. The identifying DICOM attributes and the
source file names (``image_rows.PHI_COLUMNS``) are encrypted under ``<set>/table-key/phi``;
the pixels, the geometry and the footer under ``<set>/table-key/clinical``. Reading pixels
and geometry never needs the PHI key.

Layout (docs/imaging.md): the clinical columns of ``image_rows.CLINICAL_FIELDS``, then
``pixels`` (fixed-size binary: the image's rows x columns float32 values, little-endian,
row-major, in modality units such as HU), then the PHI columns. The footer's key-value
metadata ``workbench.images`` (JSON, authenticated with the footer) names the format, the
shape and the PHI columns. Row groups hold about ``ROW_GROUP_BYTES`` of pixels, and reading
goes one row group at a time, so a scan's memory follows its batch, not the set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import WorkbenchError, about
from workbench.sealing import kms
from workbench.sealing.atomic import atomic_output
from workbench.sealing.image_rows import (
    CLINICAL_COLUMNS,
    PHI_COLUMNS,
    PIXEL_COLUMN,
    PIXEL_DTYPE,
    Slice,
    row_schema,
)
from workbench.sealing.image_sources import plan_images, planned_slices
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeySource
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
from workbench.sealing.table import encryption_configuration, open_parquet, opening_errors

FORMAT = "workbench-images/1"
METADATA_KEY = b"workbench.images"
# Pixels per row group (before compression): large enough that per-group costs (a key
# unwrap, page headers) vanish, small enough that one group is a modest amount of memory.
ROW_GROUP_BYTES = 16 * 2**20
# A scan's default batch, in bytes of pixels (``default_batch_rows``).
BATCH_BYTES = 32 * 2**20
# Uncompressed by default: reading then runs at memory speed, so scoring a set costs what
# the model costs. zstd stores CT slices in about half the bytes but opens 3 to 4 times
# slower, which a small model notices (docs/imaging.md has the figures); pass
# compression="zstd" for archives.
COMPRESSION = "none"


@dataclass(frozen=True)
class SealedImages:
    path: Path
    rows: int
    shape: tuple[int, int]
    volumes: int
    resampled: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ImageSetInfo:
    """What a sealed image set holds (read from its footer with the clinical key alone)."""

    path: Path
    rows: int
    shape: tuple[int, int]
    fields: tuple[str, ...]  # the clinical row fields, in file order
    phi_columns: tuple[str, ...]
    group_rows: tuple[int, ...]  # images per row group, in file order

    @property
    def image_bytes(self) -> int:
        return int(np.prod(self.shape)) * PIXEL_DTYPE.itemsize

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.fields, *self.phi_columns)


def default_batch_rows(shape: tuple[int, int]) -> int:
    """Images per batch so that a batch holds about ``BATCH_BYTES`` of pixels."""
    return max(1, BATCH_BYTES // (int(np.prod(shape)) * PIXEL_DTYPE.itemsize))


# -- sealing (the data owner's side) --------------------------------------------------------

def image_table(pieces: list[Slice], schema: pa.Schema) -> pa.Table:
    """The rows of ``pieces`` as an Arrow table of the image-set ``schema``."""
    columns: dict[str, pa.Array] = {}
    for name in CLINICAL_COLUMNS:
        columns[name] = pa.array([p.fields.get(name) for p in pieces],
                                 type=schema.field(name).type, from_pandas=True)
    width = schema.field(PIXEL_COLUMN).type.byte_width
    data = b"".join(p.pixels.astype(PIXEL_DTYPE, copy=False).tobytes() for p in pieces)
    columns[PIXEL_COLUMN] = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(pieces), [None, pa.py_buffer(data)])
    for name in PHI_COLUMNS:
        columns[name] = pa.array([p.identifiers.get(name) for p in pieces], type=pa.string())
    return pa.table(columns, schema=schema)


def seal_images(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    keyring: Keyring,
    dataset: str,
    shape: tuple[int, int] | None = None,
    compression: str = COMPRESSION,
) -> SealedImages:
    """Seal DICOM files, NumPy arrays or directories of them into one image set ``out``.

    Every image must have the same shape, or ``shape=(rows, columns)`` resamples them all
    (spacing adjusted, the original size kept in ``original_height``/``original_width``).
    The set's keys are created in ``keyring`` if new; the keyring is saved only once the
    set is written.
    """
    out = Path(out)
    plan = plan_images(sources, shape=shape)
    descriptor = {"format": FORMAT, "shape": list(plan.shape), "pixel_column": PIXEL_COLUMN,
                  "pixel_dtype": PIXEL_DTYPE.str, "phi_columns": list(PHI_COLUMNS),
                  "resampled": plan.resample}
    schema = row_schema(plan.shape).with_metadata(
        {METADATA_KEY: json.dumps(descriptor, separators=(",", ":"))})
    config = encryption_configuration(dataset, schema.names, PHI_COLUMNS)
    for role in (PHI_ROLE, CLINICAL_ROLE):
        keyring.ensure_aes256(table_key(dataset, role))
    properties = kms.crypto_factory(keyring).file_encryption_properties(
        kms.connection_config(), config)
    group = max(1, ROW_GROUP_BYTES // (int(np.prod(plan.shape)) * PIXEL_DTYPE.itemsize))
    rows = 0
    with atomic_output(out) as handle:
        # Statistics of the pixel blobs would be 2 x an image per page, and useless.
        writer = pq.ParquetWriter(
            handle, schema, encryption_properties=properties, compression=compression,
            write_statistics=[n for n in schema.names if n != PIXEL_COLUMN],
            use_dictionary=[n for n in schema.names if n != PIXEL_COLUMN])
        try:
            pending: list[Slice] = []
            for piece in planned_slices(plan):
                pending.append(piece)
                if len(pending) == group:
                    writer.write_table(image_table(pending, schema), row_group_size=group)
                    rows += len(pending)
                    pending = []
            if pending:
                writer.write_table(image_table(pending, schema), row_group_size=group)
                rows += len(pending)
        finally:
            writer.close()
        keyring.save()
    volumes = len({item.volume for item in plan.items})
    return SealedImages(out, rows, plan.shape, volumes, plan.resample, plan.skipped)


# -- opening (the kernel's side) ------------------------------------------------------------

def _info(path: Path, parquet: pq.ParquetFile) -> ImageSetInfo:
    schema = parquet.schema_arrow
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise WorkbenchError(about(path, "is a sealed table, not a sealed image set (no "
                                         f"'{METADATA_KEY.decode()}' metadata)"))
    try:
        descriptor = json.loads(raw)
        if descriptor.get("format") != FORMAT:
            raise ValueError(f"format is {descriptor.get('format')!r}, not {FORMAT}")
        shape = tuple(int(n) for n in descriptor["shape"])
        phi = tuple(str(c) for c in descriptor["phi_columns"])
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape {shape}")
        if descriptor.get("pixel_dtype") != PIXEL_DTYPE.str:
            raise ValueError(f"pixel dtype {descriptor.get('pixel_dtype')!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise WorkbenchError(about(path, f"image set metadata is not usable ({err})")) from None
    expected = pa.binary(int(np.prod(shape)) * PIXEL_DTYPE.itemsize)
    if PIXEL_COLUMN not in schema.names or schema.field(PIXEL_COLUMN).type != expected:
        found = schema.field(PIXEL_COLUMN).type if PIXEL_COLUMN in schema.names else "none"
        raise WorkbenchError(about(path, f"pixel column is {found}, not {expected} as the "
                                         f"set's shape {shape[0]}x{shape[1]} says"))
    fields = tuple(n for n in schema.names if n != PIXEL_COLUMN and n not in phi)
    metadata = parquet.metadata
    return ImageSetInfo(path, metadata.num_rows, (shape[0], shape[1]), fields,
                        tuple(n for n in phi if n in schema.names),
                        tuple(metadata.row_group(i).num_rows
                              for i in range(metadata.num_row_groups)))


def image_set_info(path: str | Path, keys: KeySource) -> ImageSetInfo:
    """Open the footer (the clinical key) and describe the set; no pixels are read."""
    path = Path(path)
    parquet = open_parquet(path, keys)
    with opening_errors(path):
        return _info(path, parquet)


def checked_columns(info: ImageSetInfo, columns: Sequence[str] | None, *,
                    what: str = "") -> list[str]:
    """The row fields to read: the clinical ones by default, identifiers only if named."""
    if columns is None:
        return list(info.fields)
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in info.columns and c != PIXEL_COLUMN]
    if PIXEL_COLUMN in columns:
        unknown.append(f"{PIXEL_COLUMN} (the pixels are always read, as the batch's array)")
    if unknown:
        raise WorkbenchError(f"{what or info.path.name} has no column(s) "
                             f"{', '.join(unknown)} (fields: {', '.join(info.fields)}; "
                             f"identifiers: {', '.join(info.phi_columns)})")
    return list(dict.fromkeys(columns))


def pixels_of(column: pa.Array | pa.ChunkedArray, shape: tuple[int, int]) -> np.ndarray:
    """A batch's pixel column as a (rows, 1, height, width) float32 array (no copy)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    count, size = len(column), int(np.prod(shape))
    values = np.frombuffer(column.buffers()[1], dtype=PIXEL_DTYPE, count=count * size,
                           offset=column.offset * size * PIXEL_DTYPE.itemsize)
    return values.reshape(count, 1, *shape)


def scan_images(
    path: str | Path,
    keys: KeySource,
    *,
    batch_rows: int | None = None,
    columns: Sequence[str] | None = None,
    row_groups: Sequence[int] | None = None,
    use_threads: bool = True,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield (pixels, row fields) of at most ``batch_rows`` images, one row group at a time
    (of ``row_groups`` only, if given)."""
    path = Path(path)
    parquet = open_parquet(path, keys)
    with opening_errors(path):
        info = _info(path, parquet)
        wanted = checked_columns(info, columns)
        rows = batch_rows or default_batch_rows(info.shape)
        groups = list(row_groups) if row_groups is not None else None
        for batch in parquet.iter_batches(batch_size=rows, columns=[*wanted, PIXEL_COLUMN],
                                          row_groups=groups, use_threads=use_threads):
            frame = batch.select(wanted).to_pandas()
            yield pixels_of(batch.column(PIXEL_COLUMN), info.shape), frame


def open_images(path: str | Path, keys: KeySource, columns: Sequence[str] | None = None
                ) -> tuple[np.ndarray, pd.DataFrame]:
    """The whole set in memory: pixels (rows, 1, height, width) float32 and the row fields."""
    info = image_set_info(path, keys)
    pixels = np.empty((info.rows, 1, *info.shape), dtype=np.float32)
    frames, position = [], 0
    for batch, frame in scan_images(path, keys, columns=columns):
        pixels[position:position + len(batch)] = batch
        position += len(batch)
        frames.append(frame)
    if position != info.rows:
        raise WorkbenchError(about(path, f"holds {position} images, its footer says "
                                         f"{info.rows}"))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=checked_columns(info, columns))
    return pixels, frame

