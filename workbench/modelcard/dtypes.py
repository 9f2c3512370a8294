"""Tensor element types: the card's names for them and what ONNX and onnxruntime call them.

One row per type; the card uses numpy's names (``float32``, ``int64``, ``bool``, ``string``).
``family`` says what data can feed the type (see ``workbench.inference.feeds``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ElementType:
    name: str  # as the card writes it
    onnx: int  # onnx.TensorProto.DataType
    ort: str  # the element as onnxruntime writes it inside "tensor(...)"
    numpy: np.dtype
    family: str  # "float" | "int" | "bool" | "string"


ELEMENT_TYPES: tuple[ElementType, ...] = (
    ElementType("float32", 1, "float", np.dtype(np.float32), "float"),
    ElementType("float64", 11, "double", np.dtype(np.float64), "float"),
    ElementType("float16", 10, "float16", np.dtype(np.float16), "float"),
    ElementType("int8", 3, "int8", np.dtype(np.int8), "int"),
    ElementType("int16", 5, "int16", np.dtype(np.int16), "int"),
    ElementType("int32", 6, "int32", np.dtype(np.int32), "int"),
    ElementType("int64", 7, "int64", np.dtype(np.int64), "int"),
    ElementType("uint8", 2, "uint8", np.dtype(np.uint8), "int"),
    ElementType("uint16", 4, "uint16", np.dtype(np.uint16), "int"),
    ElementType("uint32", 12, "uint32", np.dtype(np.uint32), "int"),
    ElementType("uint64", 13, "uint64", np.dtype(np.uint64), "int"),
    ElementType("bool", 9, "bool", np.dtype(np.bool_), "bool"),
    # onnxruntime takes and returns strings as numpy object arrays of str.
    ElementType("string", 8, "string", np.dtype(object), "string"),
)
BY_NAME = {t.name: t for t in ELEMENT_TYPES}
BY_ONNX = {t.onnx: t for t in ELEMENT_TYPES}
BY_ORT = {t.ort: t for t in ELEMENT_TYPES}
# Other spellings a hand-written card may use.
ALIASES = {"float": "float32", "double": "float64", "half": "float16", "str": "string",
           "boolean": "bool"}


def element(name: str) -> ElementType | None:
    return BY_NAME.get(ALIASES.get(name, name))
