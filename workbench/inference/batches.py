"""Turn DataFrames and Arrow record batches into the float32 matrices a model takes.

Columns are gathered one at a time into a (rows, features) buffer, so no copy of the whole
input is ever made: memory grows with the batch, not with the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Columns:
    """The feature columns of one input piece as 1-D numpy arrays (views where possible)."""

    arrays: tuple[np.ndarray, ...]
    rows: int

    def matrix(self, start: int, stop: int, dtype: np.dtype) -> np.ndarray:
        out = np.empty((stop - start, len(self.arrays)), dtype=dtype)
        for j, column in enumerate(self.arrays):
            out[:, j] = column[start:stop]
        return out


def _series_array(series: pd.Series, dtype: np.dtype) -> np.ndarray:
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy(copy=False)
    # Nullable extension types: missing values become NaN, as ONNX float inputs expect.
    return series.to_numpy(dtype=dtype, na_value=np.nan)


def frame_columns(frame: pd.DataFrame, features: Sequence[str], dtype: np.dtype) -> Columns:
    return Columns(tuple(_series_array(frame[c], dtype) for c in features), len(frame))


def arrow_columns(batch: pa.RecordBatch, features: Sequence[str], dtype: np.dtype) -> Columns:
    arrays = []
    for name in features:
        column = batch.column(name)
        if column.null_count:
            column = column.cast(pa.from_numpy_dtype(dtype))
            arrays.append(column.to_numpy(zero_copy_only=False))
        else:
            arrays.append(column.to_numpy(zero_copy_only=False))
    return Columns(tuple(arrays), batch.num_rows)


def frame_dtypes(frame: pd.DataFrame) -> dict[str, Any]:
    return {str(c): t for c, t in frame.dtypes.items()}


def arrow_dtypes(schema: pa.Schema) -> dict[str, np.dtype | None]:
    found: dict[str, np.dtype | None] = {}
    for field in schema:
        kind = field.type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or \
            pa.types.is_boolean(kind)
        found[field.name] = np.dtype(kind.to_pandas_dtype()) if numeric else None
    return found


def pieces(data: Iterable[Any]) -> Iterator[pd.DataFrame | pa.RecordBatch]:
    """Accept record batches, Arrow tables (split into their batches) and DataFrames."""
    for item in data:
        if isinstance(item, pa.Table):
            yield from item.to_batches()
        elif isinstance(item, pa.RecordBatch | pd.DataFrame):
            yield item
        else:
            raise TypeError(f"expected record batches or DataFrames, got {type(item).__name__}")
