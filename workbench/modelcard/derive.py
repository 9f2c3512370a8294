"""A card derived from the ONNX graph: names, element types and shapes, plus feature names.

Which table column feeds which element of an input is the one thing a graph does not say.
It comes, first match wins, from:

1. ``features`` (``--features a,b,c``): handed out in order to the column inputs, each
   taking as many names as its last axis is wide;
2. the converter's metadata ``feature_names`` (a JSON list or ``a,b,c``), handed out alike;
3. the input's own name, for an input one column wide (``[N]`` or ``[N, 1]``): this is how
   skl2onnx exports a pipeline whose ColumnTransformer reads one input per column.

Inputs of rank 3 and more (images, volumes, sequences) are fed from the array of the same
name in an ArrayBatch. What cannot be fed or returned is refused, every input named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.modelcard.check import default_output
from workbench.modelcard.document import CardError, InputSpec, ModelCard
from workbench.modelcard.embed import metadata, parse_model
from workbench.modelcard.signature import MAP, TENSOR, GraphValue, shape_text, signature_from_onnx

FEATURE_NAMES_KEY = "feature_names"


def feature_names_from_metadata(model: Any) -> tuple[str, ...] | None:
    import json

    text = metadata(model).get(FEATURE_NAMES_KEY)
    if not text:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        names = text.split(",")
    if not isinstance(names, list):
        return None
    names = [str(n).strip() for n in names if str(n).strip()]
    return tuple(names) or None


def _zipmap_classes(model: Any, output: str) -> tuple[str | int, ...]:
    """The keys of the ZipMap node producing ``output`` (skl2onnx classifiers)."""
    for node in model.graph.node:
        if node.op_type == "ZipMap" and output in node.output:
            for attribute in node.attribute:
                if attribute.name == "classlabels_int64s":
                    return tuple(int(v) for v in attribute.ints)
                if attribute.name == "classlabels_strings":
                    return tuple(v.decode() for v in attribute.strings)
    return ()


def _width(value: GraphValue) -> int | None:
    assert value.shape is not None
    return 1 if len(value.shape) == 1 else value.shape[1]


def _column_inputs(values: list[GraphValue], names: tuple[str, ...] | None, origin: str,
                   problems: list[str]) -> dict[str, tuple[str, ...]]:
    """Columns for each 1-D/2-D input: named in order from ``names``, else its own name."""
    if names is None:
        columns: dict[str, tuple[str, ...]] = {}
        for value in values:
            width = _width(value)
            if width == 1:
                columns[value.name] = (value.name,)
            else:
                wide = f"{width} columns" if width else "columns the graph does not count"
                problems.append(f"input '{value.name}' takes {wide}: name them (--features, "
                                f"or the model's '{FEATURE_NAMES_KEY}' metadata)")
        return columns
    widths = [_width(v) for v in values]
    if None in widths and len(values) > 1:
        problems.append(f"{origin} cannot be shared out: input(s) "
                        + ", ".join(f"'{v.name}'" for v, w in zip(values, widths, strict=True)
                                    if w is None)
                        + " do not fix their width")
        return {}
    expected = sum(w for w in widths if w) if None not in widths else len(names)
    if len(names) != expected:
        taken = ", ".join(f"{v.name} {shape_text(v.shape)}" for v in values)
        problems.append(f"{origin} name(s) {len(names)} column(s), the model's column inputs "
                        f"take {expected} ({taken})")
        return {}
    if len(set(names)) != len(names):
        problems.append(f"{origin} name(s) some columns twice")
    columns, start = {}, 0
    for value, width in zip(values, widths, strict=True):
        count = width or len(names)
        columns[value.name] = names[start:start + count]
        start += count
    return columns


def derive_card(model_bytes: bytes, features: Sequence[str] | None = None, *, name: str,
                source: str = "the model", **about: Any) -> ModelCard:
    """The card of an ONNX model, from its graph and feature names (see the module's doc).

    ``about`` adds descriptive fields (``task``, ``description``, ``trained_on``...).
    """
    return derive_from_model(parse_model(model_bytes, source=source), features, name=name,
                             source=source, **about)


def derive_from_model(model: Any, features: Sequence[str] | None = None, *, name: str,
                      source: str = "the model", **about: Any) -> ModelCard:
    """``derive_card`` for an already parsed ``onnx.ModelProto``."""
    signature = signature_from_onnx(model)
    problems: list[str] = []
    column_values, array_values = [], []
    for value in signature.inputs:
        if value.kind != TENSOR:
            problems.append(f"input '{value.name}' is {value.type_text}, which workbench "
                            "cannot feed")
        elif value.rank is None:
            problems.append(f"input '{value.name}' has no shape in the graph: write its card "
                            "(--card)")
        elif value.rank == 0:
            problems.append(f"input '{value.name}' is a scalar, not one value per row")
        elif value.rank <= 2:
            column_values.append(value)
        else:
            array_values.append(value)
    names, origin = (tuple(features), "--features") if features else (
        feature_names_from_metadata(model), f"the '{FEATURE_NAMES_KEY}' metadata")
    columns = _column_inputs(column_values, names, origin, problems) if column_values else {}
    if features and not column_values:
        problems.append(f"--features name(s) {len(features)} column(s), the model has no "
                        "column inputs")
    inputs = tuple(
        InputSpec(v.name, v.dtype, v.shape, array=v.name) if v in array_values
        else InputSpec(v.name, v.dtype, v.shape, columns=columns.get(v.name, ()))
        for v in signature.inputs if v in column_values or v in array_values)
    outputs = []
    for value in signature.outputs:
        if value.kind == TENSOR and value.rank:
            outputs.append(default_output(value))
        elif value.kind == MAP and (classes := _zipmap_classes(model, value.name)):
            outputs.append(default_output(value, classes))
        else:
            problems.append(f"output '{value.name}' is {value.type_text}"
                            f"{' without class labels' if value.kind == MAP else ''}, which "
                            "workbench cannot return as columns or arrays")
    if problems:
        raise CardError(f"{source}: cannot derive a card: " + "; ".join(problems))
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    described = {"derived_from": "the ONNX graph", **({"producer": producer} if producer else {}),
                 **about}
    return ModelCard(name, inputs, tuple(outputs), described)
