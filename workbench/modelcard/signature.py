"""A graph's inputs and outputs as the card compares them: names, element types, shapes.

Built from an ``onnx.ModelProto`` (the owner's side: deriving and checking cards before
sealing) or from what onnxruntime reports (the kernel: checking at load, no second parse of
the model). Symbolic dimensions (``N``, ``batch``) become ``None``, as in the card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.modelcard.dtypes import BY_ONNX, BY_ORT

Shape = tuple[int | None, ...]

TENSOR = "tensor"
# skl2onnx's ZipMap: a sequence of {class: probability} maps, one per row.
MAP = "map"
# Anything else (sequences of tensors, optionals, sparse tensors): not fed nor returned.
OTHER = "other"


@dataclass(frozen=True)
class GraphValue:
    name: str
    kind: str  # TENSOR | MAP | OTHER
    dtype: str | None  # the card's element type name; for MAP, the value type
    shape: Shape | None  # None: the graph does not say (for MAP: always None)
    type_text: str  # the type as onnxruntime writes it, for messages

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


@dataclass(frozen=True)
class Signature:
    inputs: tuple[GraphValue, ...]
    outputs: tuple[GraphValue, ...]

    def input(self, name: str) -> GraphValue | None:
        return next((v for v in self.inputs if v.name == name), None)

    def output(self, name: str) -> GraphValue | None:
        return next((v for v in self.outputs if v.name == name), None)


def shape_text(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


# -- from onnxruntime ---------------------------------------------------------------------

_ORT_TENSOR = re.compile(r"tensor\((\w+)\)")
_ORT_MAP = re.compile(r"seq\(map\((\w+),\s*tensor\((\w+)\)\)\)")


def _dims(dims: Iterable[Any]) -> Shape:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)


def value_from_ort(name: str, type_text: str, shape: Sequence[Any] | None) -> GraphValue:
    """``type_text`` and ``shape`` as onnxruntime's ``NodeArg`` gives them."""
    if match := _ORT_TENSOR.fullmatch(type_text):
        element = BY_ORT.get(match.group(1))
        return GraphValue(name, TENSOR if element else OTHER, element.name if element else None,
                          None if shape is None else _dims(shape), type_text)
    if match := _ORT_MAP.fullmatch(type_text):
        element = BY_ORT.get(match.group(2))
        return GraphValue(name, MAP if element else OTHER, element.name if element else None,
                          None, type_text)
    return GraphValue(name, OTHER, None, None, type_text)


def signature_from_session(session: Any) -> Signature:
    """An onnxruntime ``InferenceSession``'s inputs and outputs."""
    return Signature(
        tuple(value_from_ort(a.name, a.type, a.shape) for a in session.get_inputs()),
        tuple(value_from_ort(a.name, a.type, a.shape) for a in session.get_outputs()))


# -- from onnx ----------------------------------------------------------------------------

def _onnx_dims(tensor_type: Any) -> Shape | None:
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in tensor_type.shape.dim)


def _onnx_type_text(value_type: Any) -> str:
    which = value_type.WhichOneof("value")
    if which == "tensor_type":
        element = BY_ONNX.get(value_type.tensor_type.elem_type)
        return f"tensor({element.ort if element else value_type.tensor_type.elem_type})"
    if which == "sequence_type":
        return f"seq({_onnx_type_text(value_type.sequence_type.elem_type)})"
    if which == "map_type":
        key = BY_ONNX.get(value_type.map_type.key_type)
        return (f"map({key.ort if key else value_type.map_type.key_type},"
                f"{_onnx_type_text(value_type.map_type.value_type)})")
    return which or "unknown"


def value_from_onnx(value: Any) -> GraphValue:
    """An ``onnx.ValueInfoProto`` (a graph input or output)."""
    value_type = value.type
    text = _onnx_type_text(value_type)
    if value_type.WhichOneof("value") == "tensor_type":
        element = BY_ONNX.get(value_type.tensor_type.elem_type)
        if element is not None:
            return GraphValue(value.name, TENSOR, element.name,
                              _onnx_dims(value_type.tensor_type), text)
    if match := _ORT_MAP.fullmatch(text):
        element = BY_ORT.get(match.group(2))
        if element is not None:
            return GraphValue(value.name, MAP, element.name, None, text)
    return GraphValue(value.name, OTHER, None, None, text)


def signature_from_onnx(model: Any) -> Signature:
    """An ``onnx.ModelProto``'s inputs (initializers excluded: they have defaults) and outputs."""
    graph = model.graph
    initialized = {i.name for i in graph.initializer}
    return Signature(
        tuple(value_from_onnx(v) for v in graph.input if v.name not in initialized),
        tuple(value_from_onnx(v) for v in graph.output))
