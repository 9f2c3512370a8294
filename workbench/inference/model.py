"""A model decrypted in memory: an onnxruntime session, its card, and batched prediction.

Prediction splits the input into batches and scores them on a small pool of threads, each
running one single-threaded onnxruntime call at a time (onnxruntime releases the GIL), so
gathering the next batch's tensors overlaps with scoring the last. At most a few batches
are in flight, so memory stays bounded by the batch size whatever the input's length.
"""

from __future__ import annotations

import html
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.inference.arrays import ArrayBatch
from workbench.inference.batches import DEFAULT_BATCH_ROWS, pieces
from workbench.inference.feeds import Piece, prepare
from workbench.inference.outputs import empty_columns, output_columns
from workbench.inference.progress import progress_bar
from workbench.modelcard.check import resolve
from workbench.modelcard.document import ModelCard
from workbench.modelcard.signature import shape_text, signature_from_session
from workbench.sealing.keys import KeySource

# Threads scoring batches; a batch in flight per thread plus one being gathered.
MAX_WORKERS = 4


def _workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


@runtime_checkable
class ScoredElsewhere(Protocol):
    """Input that is scored where it lives (a cluster scan: ``workbench.scaleout.scan``):
    ``predict`` hands the model over and gets the outputs back."""

    def score(self, model: Model, *, batch_rows: int, progress: bool) -> pd.DataFrame: ...


def _session(model_bytes: bytes, source: str):
    # No telemetry (it also writes a file to TMPDIR); effective if onnxruntime is not loaded
    # yet, which the kernel ensures from its first line.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Parallelism comes from scoring batches side by side, not from inside one call.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WorkbenchError(f"{source}: not a model onnxruntime can load ({first})") from None


def _fixed_batch(card: ModelCard) -> int | None:
    """The batch size a model was exported with, if its inputs fix one (often 1)."""
    return next((i.shape[0] for i in card.inputs
                 if i.shape and isinstance(i.shape[0], int)), None)


@dataclass(frozen=True)
class Scored:
    """One batch's result columns and the row fields kept alongside them."""

    columns: dict[str, np.ndarray]
    fields: pd.DataFrame | None
    rows: int


def _total(data: Any) -> int | None:
    if isinstance(data, pd.DataFrame):
        return len(data)
    if isinstance(data, ArrayBatch):
        return data.rows
    return getattr(data, "num_rows", None)


class Model:
    """``predict(data)`` -> DataFrame of outputs, one row per input row.

    ``data``: a DataFrame, Arrow record batches or tables, ArrayBatch values (for inputs
    fed from arrays), or an iterable of these (``wb.scan_dataset``, ``wb.scan_images``).
    """

    def __init__(self, model_bytes: bytes, *, name: str, source: str = "",
                 card: ModelCard | None = None) -> None:
        self.name = name
        self.source = source or name
        self._session = _session(model_bytes, self.source)
        written = card or ModelCard.from_metadata(
            self._session.get_modelmeta().custom_metadata_map, source=self.source)
        self.card = resolve(written, signature_from_session(self._session), source=self.source)
        self._output_names = [o.name for o in self.card.outputs]
        self._fixed_batch = _fixed_batch(self.card)

    @property
    def features(self) -> list[str]:
        """The table columns the model reads."""
        return list(self.card.features)

    @property
    def arrays(self) -> list[str]:
        """The ArrayBatch arrays the model reads."""
        return list(self.card.arrays)

    @property
    def output_columns(self) -> list[str]:
        return list(self.card.output_columns)

    # -- scoring ------------------------------------------------------------------------

    def _score(self, piece: Piece, start: int, stop: int) -> Scored:
        rows = stop - start
        values = self._session.run(self._output_names,
                                   piece.feed(start, stop, self._fixed_batch))
        columns: dict[str, np.ndarray] = {}
        for spec, value in zip(self.card.outputs, values, strict=True):
            columns.update(output_columns(spec, value, rows))
        fields = None if piece.fields is None else piece.fields.iloc[start:stop]
        return Scored(columns, fields, rows)

    def _work(self, data: Any, batch_rows: int) -> Iterator[tuple[Callable[[], Scored], int]]:
        step = self._fixed_batch or batch_rows
        for number, item in enumerate(pieces(data)):
            what = f"this {type(item).__name__}" if number == 0 and isinstance(
                data, pd.DataFrame | ArrayBatch) else f"batch {number}"
            piece = prepare(self.card, item, model=self.name, what=what)
            for start in range(0, piece.rows, step):
                stop = min(start + step, piece.rows)
                yield (lambda p=piece, s=start, e=stop: self._score(p, s, e)), stop - start

    def _scored(self, work: Iterator[tuple[Callable[[], Scored], int]],
                progress: Any, threads: int | None) -> Iterator[Scored]:
        """Run work items on the pool, yielding their results in input order."""
        workers = threads or _workers()
        if workers == 1:
            # One thread means one core: scoring while the caller decodes the next batch
            # would make a cluster worker (one per core) use two.
            for job, _rows in work:
                yield _count(job(), progress)
            return
        in_flight: deque[Future] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="workbench-predict") as pool:
            try:
                for job, _rows in work:
                    in_flight.append(pool.submit(job))
                    while len(in_flight) > workers:
                        yield _finish(in_flight.popleft(), progress)
                while in_flight:
                    yield _finish(in_flight.popleft(), progress)
            finally:
                for future in in_flight:
                    future.cancel()

    def _iter_scored(self, data: Any, batch_rows: int, progress: bool,
                     total: int | None, threads: int | None = None) -> Iterator[Scored]:
        if batch_rows < 1:
            raise WorkbenchError("batch_rows must be at least 1")
        work = self._work(data, batch_rows)
        # The first piece is checked before a progress bar appears for input it refuses.
        first = next(work, None)
        bar = progress_bar(total, f"scoring with {self.name}") if progress else None
        try:
            if first is not None:
                yield from self._scored(itertools.chain([first], work), bar, threads)
        finally:
            if bar is not None:
                bar.close()

    def _frame(self, columns: dict[str, np.ndarray], fields: pd.DataFrame | None,
               index: Any) -> pd.DataFrame:
        outputs = pd.DataFrame(columns, index=index, copy=False)
        if fields is None or not len(fields.columns):
            return outputs
        return pd.concat([fields.set_axis(index), outputs], axis=1)

    def _empty(self) -> dict[str, np.ndarray]:
        columns: dict[str, np.ndarray] = {}
        for spec in self.card.outputs:
            columns.update(empty_columns(spec))
        return columns

    def predict(self, data: Any, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                progress: bool = True, threads: int | None = None) -> pd.DataFrame:
        """Score every row; returns one row of outputs per input row.

        A DataFrame's result keeps its index; anything else gets a fresh RangeIndex, with an
        ArrayBatch's row fields (its ``frame``) in front of the outputs. Only the outputs
        are kept, so a long scan holds one batch of input at a time. ``threads``: batches
        scored side by side (default: one per core, at most 4); a cluster scan
        (``wb.scan_dataset(..., engine="dask")``) is scored on its workers.
        """
        if isinstance(data, ScoredElsewhere):
            return data.score(self, batch_rows=batch_rows, progress=progress)
        total = _total(data)
        scored = self._iter_scored(data, batch_rows, progress, total, threads)
        columns, fields = _collect(scored, total)
        rows = len(next(iter(columns.values()))) if columns else 0
        if not columns:
            columns = self._empty()
        index = data.index if isinstance(data, pd.DataFrame) else pd.RangeIndex(rows)
        return self._frame(columns, fields, index)

    def predict_batches(self, data: Any, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                        progress: bool = True) -> Iterator[pd.DataFrame]:
        """Like ``predict``, but yields each batch's outputs as soon as it is scored."""
        start = 0
        for batch in self._iter_scored(data, batch_rows, progress, _total(data)):
            yield self._frame(batch.columns, batch.fields,
                              pd.RangeIndex(start, start + batch.rows))
            start += batch.rows

    # -- display --------------------------------------------------------------------------

    def _inputs_text(self) -> list[str]:
        lines = []
        for spec in self.card.inputs:
            source = (f"array '{spec.array}'" if spec.array is not None else
                      f"{len(spec.columns)} column(s): " + ", ".join(spec.columns[:6])
                      + (", …" if len(spec.columns) > 6 else ""))
            lines.append(f"{spec.name} {spec.dtype} {shape_text(spec.shape)} from {source}")
        return lines

    def __repr__(self) -> str:
        feeds = ", ".join(f"{len(i.columns)} columns" if i.array is None else f"array {i.array}"
                          for i in self.card.inputs)
        return f"<Model '{self.name}': {feeds} -> {', '.join(self.output_columns)}>"

    def _repr_html_(self) -> str:
        about = self.card.about
        rows = [("model", self.name), ("task", about.get("task", "")),
                ("estimator", about.get("estimator", about.get("producer", ""))),
                ("trained on", about.get("trained_on", "")),
                ("inputs", "; ".join(self._inputs_text())),
                ("outputs", ", ".join(self.output_columns))]
        if "held_out_auc" in about:
            rows.append(("held-out AUC", f"{about['held_out_auc']:.4f}"))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                       for k, v in rows if v != "")
        return f"<table>{body}</table>"


def _finish(future: Future, progress: Any) -> Scored:
    return _count(future.result(), progress)


def _count(scored: Scored, progress: Any) -> Scored:
    if progress is not None:
        progress.update(scored.rows)
    return scored


def _collect(scored: Iterable[Scored], total: int | None
             ) -> tuple[dict[str, np.ndarray], pd.DataFrame | None]:
    """Every batch's columns in one array per column: written in place when the row count
    is known up front (no second copy), else concatenated; row fields concatenated."""
    results: dict[str, np.ndarray] = {}
    chunks: list[dict[str, np.ndarray]] = []
    fields: list[pd.DataFrame] = []
    position = 0
    for batch in scored:
        if total is None:
            chunks.append(batch.columns)
        else:
            if not results:
                results = {c: np.empty(total, dtype=v.dtype) for c, v in batch.columns.items()}
            if position + batch.rows > total:
                raise WorkbenchError(f"the batches hold more rows than the {total} announced")
            for column, values in batch.columns.items():
                results[column][position:position + batch.rows] = values
        fields.append(batch.fields if batch.fields is not None
                      else pd.DataFrame(index=pd.RangeIndex(batch.rows)))
        position += batch.rows
    if total is None and chunks:
        results = {c: np.concatenate([chunk[c] for chunk in chunks]) for c in chunks[0]}
    elif results and position != total:
        results = {c: v[:position] for c, v in results.items()}
    kept = pd.concat(fields, ignore_index=True) if any(len(f.columns) for f in fields) else None
    return results, kept


def load_sealed_model(path: str | Path, name: str, keys: KeySource) -> Model:
    """Decrypt ``path`` (sealed as resource ``name``) in memory and open it."""
    from workbench.sealing.files import open_file

    model_bytes = open_file(path, name, keys)
    try:
        return Model(model_bytes, name=name, source=str(path))
    finally:
        del model_bytes
