"""A model decrypted in memory: an onnxruntime session, its card, and batched prediction.

Prediction splits the input into batches and scores them on a small pool of threads, each
running one single-threaded onnxruntime call at a time (onnxruntime releases the GIL), so
gathering the next batch's columns overlaps with scoring the last. At most a few batches
are in flight, so memory stays bounded by the batch size whatever the input's length.
"""

from __future__ import annotations

import html
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.inference.batches import (
    DEFAULT_BATCH_ROWS,
    Columns,
    arrow_columns,
    arrow_dtypes,
    frame_columns,
    frame_dtypes,
    pieces,
)
from workbench.inference.card import ModelCard
from workbench.inference.progress import progress_bar
from workbench.sealing.keys import KeySource

# Threads scoring batches; a batch in flight per thread plus one being gathered.
MAX_WORKERS = 4
_NUMPY_TYPES = {"float32": np.float32, "float64": np.float64}


def _workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


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


class Model:
    """``predict(DataFrame)`` -> DataFrame of outputs (same index); ``predict(batches)`` too."""

    def __init__(self, model_bytes: bytes, *, name: str, source: str = "",
                 card: ModelCard | None = None) -> None:
        self.name = name
        self.source = source or name
        self._session = _session(model_bytes, self.source)
        self.card = card or ModelCard.from_metadata(
            self._session.get_modelmeta().custom_metadata_map, source=self.source)
        self._check_signature()
        self._dtype = np.dtype(_NUMPY_TYPES.get(self.card.feature_dtype, np.float32))
        self._output_names = [o.name for o in self.card.outputs]

    def _check_signature(self) -> None:
        inputs = self._session.get_inputs()
        names = [i.name for i in inputs]
        if names != [self.card.input_name]:
            raise WorkbenchError(f"{self.source}: card names input '{self.card.input_name}', "
                                 f"the model takes {', '.join(names)}")
        width = inputs[0].shape[-1] if inputs[0].shape else None
        if isinstance(width, int) and width != len(self.card.features):
            raise WorkbenchError(f"{self.source}: card lists {len(self.card.features)} feature "
                                 f"columns, the model input takes {width}")
        have = {o.name for o in self._session.get_outputs()}
        absent = [o.name for o in self.card.outputs if o.name not in have]
        if absent:
            raise WorkbenchError(f"{self.source}: card names output(s) the model lacks: "
                                 f"{', '.join(absent)}")

    @property
    def features(self) -> list[str]:
        return list(self.card.features)

    @property
    def output_columns(self) -> list[str]:
        return self.card.output_columns()

    # -- scoring ------------------------------------------------------------------------

    def _score(self, matrix: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self._output_names, {self.card.input_name: matrix})

    def _score_piece(self, columns: Columns, start: int, stop: int) -> list[np.ndarray]:
        return self._score(columns.matrix(start, stop, self._dtype))

    def _columns_of(self, piece: pd.DataFrame | Any, what: str) -> Columns:
        if isinstance(piece, pd.DataFrame):
            self.card.check(frame_dtypes(piece), what=what)
            return frame_columns(piece, self.card.features, self._dtype)
        self.card.check(arrow_dtypes(piece.schema), what=what)
        return arrow_columns(piece, self.card.features, self._dtype)

    def _scored(self, work: Iterator[tuple[Callable[[], list[np.ndarray]], int]],
                progress: Any) -> Iterator[tuple[list[np.ndarray], int]]:
        """Run work items on the pool, yielding (outputs, rows) in input order."""
        workers = _workers()
        in_flight: deque[tuple[Future, int]] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="workbench-predict") as pool:
            try:
                for job, rows in work:
                    in_flight.append((pool.submit(job), rows))
                    while len(in_flight) > workers:
                        yield self._finish(in_flight.popleft(), progress)
                while in_flight:
                    yield self._finish(in_flight.popleft(), progress)
            finally:
                for future, _rows in in_flight:
                    future.cancel()

    @staticmethod
    def _finish(item: tuple[Future, int], progress: Any) -> tuple[list[np.ndarray], int]:
        future, rows = item
        outputs = future.result()
        if progress is not None:
            progress.update(rows)
        return outputs, rows

    def _frame(self, outputs: list[np.ndarray], index: Any) -> pd.DataFrame:
        columns: dict[str, np.ndarray] = {}
        for spec, values in zip(self.card.outputs, outputs, strict=True):
            if values.ndim == 1:
                columns[spec.columns[0]] = values
            else:
                for j, column in enumerate(spec.columns):
                    columns[column] = values[:, j]
        return pd.DataFrame(columns, index=index, copy=False)

    def predict(self, data: pd.DataFrame | Iterable[Any], *,
                batch_rows: int = DEFAULT_BATCH_ROWS, progress: bool = True) -> pd.DataFrame:
        """Score every row; returns one row of outputs per input row.

        ``data`` is a DataFrame (the result keeps its index) or an iterable of Arrow record
        batches / DataFrames such as ``wb.scan_dataset(...)`` (the result has a fresh
        RangeIndex). Only the outputs are kept, so a long scan holds one batch of input.
        """
        if batch_rows < 1:
            raise WorkbenchError("batch_rows must be at least 1")
        if isinstance(data, pd.DataFrame):
            return self._predict_frame(data, batch_rows, progress)
        total = getattr(data, "num_rows", None)
        outputs = self._iter_outputs(data, batch_rows, progress, total)
        merged = _fill(outputs, total) if total is not None else _concatenate(outputs)
        if merged is None:
            return self._frame(self._empty_outputs(), pd.RangeIndex(0))
        return self._frame(merged, pd.RangeIndex(len(merged[0])))

    def predict_batches(self, data: Iterable[Any], *, batch_rows: int = DEFAULT_BATCH_ROWS,
                        progress: bool = True) -> Iterator[pd.DataFrame]:
        """Like ``predict`` on batches, but yields each batch's outputs as it is scored."""
        total = getattr(data, "num_rows", None)
        start = 0
        for outputs in self._iter_outputs(data, batch_rows, progress, total):
            rows = len(outputs[0])
            yield self._frame(outputs, pd.RangeIndex(start, start + rows))
            start += rows

    def _empty_outputs(self) -> list[np.ndarray]:
        probe = np.zeros((1, len(self.card.features)), dtype=self._dtype)
        return [o[:0] for o in self._score(probe)]

    def _predict_frame(self, frame: pd.DataFrame, batch_rows: int, progress: bool
                       ) -> pd.DataFrame:
        columns = self._columns_of(frame, "this DataFrame")
        rows = len(frame)
        if rows == 0:
            return self._frame(self._empty_outputs(), frame.index)
        bar = _progress_bar(rows, self.name) if progress else None
        results: list[np.ndarray] | None = None
        position = 0
        try:
            work = ((lambda s=s: self._score_piece(columns, s, min(s + batch_rows, rows)),
                     min(batch_rows, rows - s)) for s in range(0, rows, batch_rows))
            for outputs, count in self._scored(work, bar):
                if results is None:
                    results = [np.empty((rows, *o.shape[1:]), dtype=o.dtype) for o in outputs]
                for target, values in zip(results, outputs, strict=True):
                    target[position:position + count] = values
                position += count
        finally:
            if bar is not None:
                bar.close()
        assert results is not None
        return self._frame(results, frame.index)

    def _iter_outputs(self, data: Iterable[Any], batch_rows: int, progress: bool,
                      total: int | None) -> Iterator[list[np.ndarray]]:
        bar = _progress_bar(total, self.name) if progress else None

        def work() -> Iterator[tuple[Callable[[], list[np.ndarray]], int]]:
            for number, piece in enumerate(pieces(data)):
                columns = self._columns_of(piece, f"batch {number}")
                for s in range(0, columns.rows, batch_rows):
                    stop = min(s + batch_rows, columns.rows)
                    yield (lambda c=columns, s=s, e=stop: self._score_piece(c, s, e)), stop - s

        try:
            for outputs, _rows in self._scored(work(), bar):
                yield outputs
        finally:
            if bar is not None:
                bar.close()

    # -- display --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"<Model '{self.name}': {len(self.card.features)} features -> "
                f"{', '.join(self.output_columns)}>")

    def _repr_html_(self) -> str:
        raw = self.card.raw
        rows = [("model", self.name), ("task", raw.get("task", "")),
                ("estimator", raw.get("estimator", "")),
                ("trained on", raw.get("trained_on", "")),
                ("inputs", f"{len(self.card.features)} columns ({self.card.feature_dtype}): "
                           + ", ".join(self.card.features[:6])
                           + (", …" if len(self.card.features) > 6 else "")),
                ("outputs", ", ".join(self.output_columns))]
        if "held_out_auc" in raw:
            rows.append(("held-out AUC", f"{raw['held_out_auc']:.4f}"))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                       for k, v in rows)
        return f"<table>{body}</table>"


def _fill(outputs: Iterator[list[np.ndarray]], total: int) -> list[np.ndarray] | None:
    """Write each batch's outputs into arrays sized for ``total`` rows (no second copy)."""
    results: list[np.ndarray] | None = None
    position = 0
    for values in outputs:
        count = len(values[0])
        if results is None:
            results = [np.empty((total, *v.shape[1:]), dtype=v.dtype) for v in values]
        if position + count > total:
            raise WorkbenchError(f"the batches hold more rows than the {total} announced")
        for target, part in zip(results, values, strict=True):
            target[position:position + count] = part
        position += count
    if results is not None and position != total:
        results = [r[:position] for r in results]
    return results


def _concatenate(outputs: Iterator[list[np.ndarray]]) -> list[np.ndarray] | None:
    chunks = list(outputs)
    if not chunks:
        return None
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


def _progress_bar(total: int | None, name: str):
    return progress_bar(total, f"scoring with {name}")


def load_sealed_model(path: str | Path, name: str, keys: KeySource) -> Model:
    """Decrypt ``path`` (sealed as resource ``name``) in memory and open it."""
    from workbench.sealing.files import open_file

    model_bytes = open_file(path, name, keys)
    try:
        return Model(model_bytes, name=name, source=str(path))
    finally:
        del model_bytes
