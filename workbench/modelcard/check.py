"""The card against the graph it describes: one error naming every disagreement.

``resolve`` also completes the card from the graph: what a hand-written card leaves out (an
input's dtype or shape, an output's dtype, shape or columns) is taken from the graph, so a
loaded model always holds a card that says exactly what it reads and returns.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.modelcard.document import CardError, InputSpec, ModelCard, OutputSpec
from workbench.modelcard.signature import MAP, TENSOR, GraphValue, Signature, shape_text


class CardMismatch(CardError):
    """The card describes inputs or outputs the model's graph does not have."""


def default_output(value: GraphValue, classes: tuple[str | int, ...] = ()) -> OutputSpec:
    """How an output is returned when the card does not say: columns if it is 1-D, 2-D of a
    known width, or a ZipMap; otherwise one array per row."""
    spec = OutputSpec(value.name, value.dtype, value.shape, classes=classes)
    if value.kind == MAP:
        return replace(spec, columns=tuple(f"{value.name}_{c}" for c in classes))
    rank, width = value.rank, (value.shape or (None, None))[-1]
    if rank == 1 or (rank == 2 and width == 1):
        return replace(spec, columns=(value.name,))
    if rank == 2 and width is not None:
        names = classes if len(classes) == width else range(width)
        return replace(spec, columns=tuple(f"{value.name}_{c}" for c in names))
    return replace(spec, array=value.name)


def _compatible(card: tuple[int | None, ...], graph: tuple[int | None, ...]) -> bool:
    return len(card) == len(graph) and all(
        a is None or b is None or a == b for a, b in zip(card, graph, strict=True))


def _input(spec: InputSpec, value: GraphValue, problems: list[str]) -> InputSpec:
    what = f"input '{spec.name}'"
    if value.kind != TENSOR:
        problems.append(f"{what}: the graph takes {value.type_text}, which workbench cannot feed")
        return spec
    if value.rank == 0:
        problems.append(f"{what}: the graph takes a scalar, not one value per row")
        return spec
    if spec.dtype is not None and spec.dtype != value.dtype:
        problems.append(f"{what}: the card says {spec.dtype}, the graph takes {value.dtype}")
    shape = spec.shape if spec.shape is not None else value.shape
    if spec.columns:
        width = 1 if value.rank == 1 else (value.shape[-1] if value.rank == 2 else None)
        if value.rank is not None and value.rank not in (1, 2):
            problems.append(f"{what}: columns feed 1-D or 2-D inputs, the graph takes "
                            f"{shape_text(value.shape)} (feed it from an array)")
        elif width is not None and width != len(spec.columns):
            problems.append(f"{what}: the card lists {len(spec.columns)} column(s), the graph "
                            f"takes {width}")
        elif spec.shape is not None and value.shape is not None and \
                not _compatible(spec.shape, value.shape):
            problems.append(f"{what}: the card says shape {shape_text(spec.shape)}, the graph "
                            f"takes {shape_text(value.shape)}")
        if shape is None:
            shape = (None, len(spec.columns))
    elif spec.shape is not None and value.shape is not None and \
            not _compatible(spec.shape, value.shape):
        problems.append(f"{what}: the card says shape {shape_text(spec.shape)}, the graph takes "
                        f"{shape_text(value.shape)}")
    return replace(spec, dtype=spec.dtype or value.dtype, shape=shape)


def _output(spec: OutputSpec, value: GraphValue, problems: list[str]) -> OutputSpec:
    what = f"output '{spec.name}'"
    if value.kind not in (TENSOR, MAP):
        problems.append(f"{what}: the graph gives {value.type_text}, which workbench cannot "
                        "return as columns or arrays")
        return spec
    if spec.dtype is not None and spec.dtype != value.dtype:
        problems.append(f"{what}: the card says {spec.dtype}, the graph gives {value.dtype}")
    if not spec.resolved:
        spec = replace(default_output(value, spec.classes), dtype=spec.dtype)
    if value.kind == MAP:
        if spec.array is not None:
            problems.append(f"{what}: the graph gives {value.type_text} (a ZipMap), which "
                            "becomes one column per class, not an array")
        elif len(spec.classes) != len(spec.columns):
            problems.append(f"{what}: the graph gives {value.type_text} (a ZipMap): the card "
                            f"needs its classes, one per column ({len(spec.columns)} listed)")
    elif spec.columns:
        width = 1 if value.rank == 1 else (value.shape[-1] if value.rank == 2 else None)
        if value.rank is not None and value.rank not in (1, 2):
            problems.append(f"{what}: columns take 1-D or 2-D outputs, the graph gives "
                            f"{shape_text(value.shape)} (return it as an array)")
        elif width is not None and width != len(spec.columns):
            problems.append(f"{what}: the card lists {len(spec.columns)} column(s), the graph "
                            f"gives {width}")
    if spec.shape is not None and value.shape is not None and \
            not _compatible(spec.shape, value.shape):
        problems.append(f"{what}: the card says shape {shape_text(spec.shape)}, the graph gives "
                        f"{shape_text(value.shape)}")
    return replace(spec, dtype=spec.dtype or value.dtype,
                   shape=spec.shape if spec.shape is not None else value.shape)


def resolve(card: ModelCard, signature: Signature, *, source: str) -> ModelCard:
    """The card completed from the graph, or :class:`CardMismatch` naming every disagreement."""
    problems: list[str] = []
    inputs = []
    for spec in card.inputs:
        value = signature.input(spec.name)
        if value is None:
            problems.append(f"the card's input '{spec.name}' is not a graph input (graph "
                            f"inputs: {', '.join(v.name for v in signature.inputs)})")
            continue
        inputs.append(_input(spec, value, problems))
    named = {i.name for i in card.inputs}
    for value in signature.inputs:
        if value.name not in named:
            problems.append(f"the graph's input '{value.name}' is not fed by the card")
    outputs = []
    for spec in card.outputs:
        value = signature.output(spec.name)
        if value is None:
            problems.append(f"the card's output '{spec.name}' is not a graph output (graph "
                            f"outputs: {', '.join(v.name for v in signature.outputs)})")
            continue
        outputs.append(_output(spec, value, problems))
    columns = [c for o in outputs for c in o.result_columns]
    twice = sorted({str(c) for c in columns if columns.count(c) > 1})
    if twice:
        problems.append(f"output column(s) named twice: {', '.join(twice)}")
    if problems:
        raise CardMismatch(f"{source}: the card and the model's graph disagree: "
                           + "; ".join(problems))
    return replace(card, inputs=tuple(inputs), outputs=tuple(outputs))
