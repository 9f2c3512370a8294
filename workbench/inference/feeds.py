"""One piece of input (a DataFrame, an Arrow record batch, an ArrayBatch) as named tensors.

``prepare`` checks the piece against the card first, naming every input it cannot feed and
why in one :class:`FeatureMismatch`, then returns a :class:`Piece` whose ``feed(start,
stop)`` builds the tensors of a row range. Columns are gathered one at a time into each
input's buffer, so no copy of the whole piece is ever made: memory grows with the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.errors import WorkbenchError
from workbench.inference.arrays import ArrayBatch
from workbench.inference.columns import (
    ACCEPTS,
    EXPECTED,
    ColumnType,
    MissingValues,
    arrow_column_type,
    arrow_values,
    numpy_kind,
    pandas_column_type,
    series_values,
)
from workbench.modelcard.document import InputSpec, ModelCard
from workbench.modelcard.dtypes import BY_NAME, ElementType
from workbench.modelcard.signature import shape_text

# Rows gathered per block when columns are written into a matrix (about 1 MB of output).
BLOCK_BYTES = 2**20
MIN_BLOCK_ROWS = 256


class FeatureMismatch(WorkbenchError):
    """The input does not carry what the model's card says it reads."""


# -- the piece as the checks see it ------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What a piece holds: its columns (typed on demand), its arrays, its row fields."""

    rows: int
    what: str
    has_column: Callable[[str], bool]
    column_type: Callable[[str], ColumnType]
    column_values: Callable[[str, ElementType], np.ndarray]
    arrays: Mapping[str, np.ndarray] | None  # None: this kind of data holds no arrays
    fields: pd.DataFrame | None = None  # kept alongside the outputs (an ArrayBatch's frame)


def frame_view(frame: pd.DataFrame, what: str) -> View:
    return View(len(frame), what, frame.columns.__contains__,
                lambda c: pandas_column_type(frame[c]),
                lambda c, e: series_values(frame[c], e), None)


def arrow_view(batch: pa.RecordBatch, what: str) -> View:
    names = set(batch.schema.names)
    return View(batch.num_rows, what, names.__contains__,
                lambda c: arrow_column_type(batch.schema.field(c).type),
                lambda c, e: arrow_values(batch.column(c), e), None)


def array_view(batch: ArrayBatch, what: str) -> View:
    frame = batch.frame
    fields = frame.reset_index(drop=True) if len(frame.columns) else None
    return View(batch.rows, what, frame.columns.__contains__,
                lambda c: pandas_column_type(frame[c]),
                lambda c, e: series_values(frame[c], e), batch.arrays, fields)


VIEWS: tuple[tuple[type, Callable[[Any, str], View]], ...] = (
    (pd.DataFrame, frame_view), (pa.RecordBatch, arrow_view), (ArrayBatch, array_view))


def view_of(piece: Any, what: str) -> View:
    for kind, make in VIEWS:
        if isinstance(piece, kind):
            return make(piece, what)
    raise TypeError(f"expected DataFrames, Arrow record batches or ArrayBatch values, got "
                    f"{type(piece).__name__}")


# -- the checks ---------------------------------------------------------------------------

def _expected(element: ElementType) -> str:
    return f"{EXPECTED[element.family]} as {element.name}"


def _inputs_text(names: list[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in dict.fromkeys(names))
    return f"input{'s' if len(set(names)) > 1 else ''} {quoted}"


@dataclass
class _Problems:
    missing: list[tuple[str, str]] = field(default_factory=list)  # (column, input)
    wrong_type: list[str] = field(default_factory=list)
    no_array: list[str] = field(default_factory=list)
    wrong_shape: list[str] = field(default_factory=list)
    missing_values: list[str] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)

    def message(self) -> str:
        parts = []
        if self.missing:
            columns = ", ".join(dict.fromkeys(c for c, _ in self.missing))
            parts.append(f"missing column(s) {columns} "
                         f"({_inputs_text([i for _, i in self.missing])})")
        if self.wrong_type:
            parts.append(f"wrong type {', '.join(self.wrong_type)}")
        parts.extend(self.no_array)
        if self.wrong_shape:
            parts.append(f"wrong shape {', '.join(self.wrong_shape)}")
        if self.missing_values:
            parts.append(f"missing values in {', '.join(self.missing_values)}")
        if self.clashes:
            parts.append(f"row field(s) {', '.join(self.clashes)} have the name of an output "
                         "column (rename them)")
        return "; ".join(parts)


def _check_columns(spec: InputSpec, element: ElementType, view: View,
                   problems: _Problems) -> None:
    for column in spec.columns:
        if not view.has_column(column):
            problems.missing.append((column, spec.name))
            continue
        found = view.column_type(column)
        if found.kind not in ACCEPTS[element.family]:
            problems.wrong_type.append(f"{column} ({found.label}; input '{spec.name}' takes "
                                       f"{_expected(element)})")


def _check_array(spec: InputSpec, element: ElementType, view: View,
                 problems: _Problems) -> None:
    name = spec.array
    assert name is not None
    if view.arrays is None:
        problems.no_array.append(f"input '{spec.name}' takes array '{name}', and {view.what} "
                                 "holds table columns only (score an ArrayBatch)")
        return
    if name not in view.arrays:
        problems.no_array.append(f"no array '{name}' for input '{spec.name}' (the batch holds: "
                                 f"{', '.join(view.arrays) or 'no arrays'})")
        return
    array = np.asarray(view.arrays[name])
    kind = numpy_kind(array.dtype) if array.dtype != object else "other"
    if kind not in ACCEPTS[element.family]:
        problems.wrong_type.append(f"array {name} ({array.dtype}; input '{spec.name}' takes "
                                   f"{_expected(element)})")
    expected = spec.shape
    if expected is not None and (array.ndim != len(expected) or any(
            want is not None and want != got
            for want, got in zip(expected[1:], array.shape[1:], strict=True))):
        got = shape_text((None, *array.shape[1:]))
        problems.wrong_shape.append(f"array {name} ({got}; input '{spec.name}' takes "
                                    f"{shape_text(expected)})")


def check(card: ModelCard, view: View, *, model: str) -> None:
    """Refuse a piece the card's inputs cannot be fed from, naming every input and why."""
    problems = _Problems()
    for spec in card.inputs:
        element = BY_NAME[spec.dtype or "float32"]
        if spec.array is None:
            _check_columns(spec, element, view, problems)
        else:
            _check_array(spec, element, view, problems)
    if view.fields is not None:
        outputs = set(card.output_columns)
        problems.clashes = [str(c) for c in view.fields.columns if c in outputs]
    if text := problems.message():
        raise FeatureMismatch(f"model '{model}' cannot score {view.what}: {text}")


# -- gathering tensors --------------------------------------------------------------------

@dataclass(frozen=True)
class ColumnsSource:
    columns: tuple[np.ndarray, ...]
    element: ElementType
    rank: int

    def take(self, start: int, stop: int) -> np.ndarray:
        if self.rank == 1:
            return np.asarray(self.columns[0][start:stop], dtype=self.element.numpy)
        out = np.empty((stop - start, len(self.columns)), dtype=self.element.numpy)
        # Column by column, a block of rows at a time: each column's write strides across
        # the row-major matrix, and a block that stays in cache halves the gathering time.
        block = max(MIN_BLOCK_ROWS, BLOCK_BYTES // max(1, out.itemsize * len(self.columns)))
        for first in range(start, stop, block):
            last = min(first + block, stop)
            rows = out[first - start:last - start]
            for j, column in enumerate(self.columns):
                rows[:, j] = column[first:last]
        return out


@dataclass(frozen=True)
class ArraySource:
    array: np.ndarray
    element: ElementType

    def take(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self.array[start:stop], dtype=self.element.numpy)


@dataclass(frozen=True)
class Piece:
    """A checked piece: ``feed(start, stop)`` gives each input's tensor for those rows."""

    rows: int
    sources: Mapping[str, ColumnsSource | ArraySource]
    fields: pd.DataFrame | None  # row fields to keep alongside the outputs

    def feed(self, start: int, stop: int, pad_to: int | None = None) -> dict[str, np.ndarray]:
        """The tensors of rows [start, stop); ``pad_to`` repeats the last row up to a fixed
        batch size (models exported with batch size 1, or another fixed size)."""
        tensors = {name: source.take(start, stop) for name, source in self.sources.items()}
        if pad_to is not None and stop - start < pad_to:
            extra = pad_to - (stop - start)
            tensors = {name: np.concatenate([t, np.repeat(t[-1:], extra, axis=0)])
                       for name, t in tensors.items()}
        return tensors


def prepare(card: ModelCard, piece: Any, *, model: str, what: str) -> Piece:
    view = view_of(piece, what)
    check(card, view, model=model)
    values: dict[tuple[str, str], np.ndarray] = {}
    missing: list[str] = []
    sources: dict[str, ColumnsSource | ArraySource] = {}
    for spec in card.inputs:
        element = BY_NAME[spec.dtype or "float32"]
        if spec.array is not None:
            assert view.arrays is not None
            sources[spec.name] = ArraySource(np.asarray(view.arrays[spec.array]), element)
            continue
        for column in spec.columns:
            key = (column, element.name)
            if key not in values:
                try:
                    values[key] = view.column_values(column, element)
                except MissingValues:
                    missing.append(f"{column} (input '{spec.name}' takes {element.name}, "
                                   "which has no missing value)")
                    values[key] = np.empty(0)
        rank = len(spec.shape) if spec.shape is not None else 2
        sources[spec.name] = ColumnsSource(
            tuple(values[(c, element.name)] for c in spec.columns), element, rank)
    if missing:
        raise FeatureMismatch(f"model '{model}' cannot score {what}: missing values in "
                              + ", ".join(missing))
    return Piece(view.rows, sources, view.fields)
