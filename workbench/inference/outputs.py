"""A model's outputs as result columns: tensors split into columns, ZipMaps into one column
per class, anything of higher rank into one array per row (an object column)."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.errors import WorkbenchError
from workbench.modelcard.document import OutputSpec
from workbench.modelcard.dtypes import BY_NAME


def _per_row(values: np.ndarray) -> np.ndarray:
    # An object column of views into the batch's output: no copy of the arrays themselves.
    out = np.empty(len(values), dtype=object)
    for i in range(len(values)):
        out[i] = values[i]
    return out


def output_columns(spec: OutputSpec, value: Any, rows: int) -> dict[str, np.ndarray]:
    """``value`` (what onnxruntime returned for ``spec``) as columns of ``rows`` rows.

    ``rows`` may be fewer than the output holds: a batch padded to a fixed size is cut back.
    """
    if isinstance(value, list):  # seq(map): skl2onnx's ZipMap, one {class: value} per row
        dtype = BY_NAME[spec.dtype or "float32"].numpy
        return {column: np.fromiter((row[key] for row in value[:rows]), dtype=dtype, count=rows)
                for column, key in zip(spec.columns, spec.classes, strict=True)}
    value = np.asarray(value)
    if value.ndim == 0 or len(value) < rows:
        raise WorkbenchError(f"output '{spec.name}' gives {value.shape} for {rows} input rows: "
                             "not one value per row")
    value = value[:rows]
    if spec.array is not None:
        return {spec.array: _per_row(value)}
    if value.ndim == 1 and len(spec.columns) == 1:
        return {spec.columns[0]: value}
    if value.ndim == 2 and value.shape[1] == len(spec.columns):
        return {column: value[:, j] for j, column in enumerate(spec.columns)}
    raise WorkbenchError(f"output '{spec.name}' gives rows of shape {list(value.shape[1:])}, "
                         f"the card names {len(spec.columns)} column(s)")


def empty_columns(spec: OutputSpec) -> dict[str, np.ndarray]:
    dtype = object if spec.array is not None else BY_NAME[spec.dtype or "float32"].numpy
    return {c: np.empty(0, dtype=dtype) for c in spec.result_columns}
