"""Table columns as a model input sees them: what kind of values they hold, and those values.

``column_type`` says what a pandas or Arrow column holds (numbers, integers, booleans,
strings) without reading it, except for pandas object columns (one pass to see they are
strings). ``column_values`` returns a 1-D numpy array for an input of a given element type:
a view of the caller's data where possible, never a copy of the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.modelcard.dtypes import ElementType

# Which column kinds can feed an input of each element family. Floats never feed integer
# inputs (that would truncate silently); NaN stands for a missing number in float inputs.
ACCEPTS = {"float": frozenset({"float", "int", "bool"}), "int": frozenset({"int", "bool"}),
           "bool": frozenset({"bool"}), "string": frozenset({"string"})}
EXPECTED = {"float": "numbers", "int": "integers", "bool": "booleans", "string": "strings"}
_NUMPY_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool", "U": "string", "S": "other"}


@dataclass(frozen=True)
class ColumnType:
    kind: str  # "float" | "int" | "bool" | "string" | "other"
    label: str  # the type as the user knows it, for messages


def numpy_kind(dtype: np.dtype) -> str:
    return _NUMPY_KINDS.get(dtype.kind, "other")


def pandas_column_type(series: pd.Series) -> ColumnType:
    dtype, label = series.dtype, str(series.dtype)
    if isinstance(dtype, pd.CategoricalDtype):
        inner = pandas_column_type(pd.Series(dtype.categories))
        return ColumnType(inner.kind, f"category of {inner.label}")
    if isinstance(dtype, pd.ArrowDtype):
        return ColumnType(arrow_column_type(dtype.pyarrow_dtype).kind, label)
    if isinstance(dtype, pd.StringDtype):
        return ColumnType("string", label)
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        return ColumnType("string" if inferred in ("string", "empty") else "other",
                          f"object holding {inferred}")
    return ColumnType(numpy_kind(np.dtype(getattr(dtype, "numpy_dtype", dtype))), label)


def arrow_column_type(kind: pa.DataType) -> ColumnType:
    if pa.types.is_dictionary(kind):
        return ColumnType(arrow_column_type(kind.value_type).kind, str(kind))
    if pa.types.is_floating(kind):
        found = "float"
    elif pa.types.is_integer(kind):
        found = "int"
    elif pa.types.is_boolean(kind):
        found = "bool"
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
            pa.types.is_string_view(kind):
        found = "string"
    else:
        found = "other"
    return ColumnType(found, str(kind))


class MissingValues(ValueError):
    """A column with missing values feeding an input that cannot represent them."""


def series_values(series: pd.Series, element: ElementType) -> np.ndarray:
    """The column's values for an input of ``element`` (a view when the dtypes allow)."""
    if element.family == "float":
        if isinstance(series.dtype, np.dtype):
            return series.to_numpy(copy=False)
        # Nullable types (Float64, Int64, boolean, Arrow): missing values become NaN.
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if series.hasnans if isinstance(series.dtype, np.dtype) else series.isna().any():
        raise MissingValues(series.name)
    if element.family == "string":
        return series.astype(object).to_numpy() if isinstance(
            series.dtype, pd.CategoricalDtype) else series.to_numpy(dtype=object)
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy(copy=False)
    return series.to_numpy(dtype=element.numpy)


def arrow_values(column: pa.Array, element: ElementType) -> np.ndarray:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.null_count:
        if element.family != "float":
            raise MissingValues()
        # Integers and booleans with nulls: NaN for the missing ones, as float inputs expect.
        column = column.cast(pa.float64())
    return column.to_numpy(zero_copy_only=False)
