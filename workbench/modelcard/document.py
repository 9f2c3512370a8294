"""The card document: the model's inputs (fed from table columns or from arrays) and outputs.

Format 2 (``"format": "workbench-card/2"``)::

    {"format": "workbench-card/2", "name": "los-model", "task": "regression",
     "inputs": [{"name": "age", "dtype": "float32", "shape": [null, 1], "columns": ["age"]},
                {"name": "image", "dtype": "float32", "shape": [null, 1, 64, 64],
                 "array": "pixels"}],
     "outputs": [{"name": "variable", "dtype": "float32", "shape": [null, 1],
                  "columns": ["los_days"]},
                 {"name": "mask", "array": "mask"}]}

An input's ``dtype`` and ``shape``, and an output's ``dtype``, ``shape`` and even its
``columns``, may be left out of a hand-written card: they are taken from the graph when the
card is checked against it (``check.resolve``). Format 1 cards (one float input fed from
``feature_columns``) are converted when read. Every other field (task, description,
trained_on, ...) is kept as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.errors import WorkbenchError
from workbench.modelcard.dtypes import element

CARD_FORMAT = "workbench-card/2"
CARD_METADATA_KEY = "workbench.card"
# Fields the document's structure owns; every other field is description, kept as is.
_STRUCTURE = frozenset({"format", "name", "inputs", "outputs", "feature_columns",
                        "feature_dtype"})

Shape = tuple[int | None, ...]


class CardError(WorkbenchError):
    """A card that cannot be read or used (malformed, or describing an impossible model)."""


@dataclass(frozen=True)
class InputSpec:
    """One graph input, fed from ``columns`` of a table or from an ``array`` of an ArrayBatch."""

    name: str
    dtype: str | None
    shape: Shape | None
    columns: tuple[str, ...] = ()
    array: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype,
                               "shape": None if self.shape is None else list(self.shape)}
        if self.array is not None:
            out["array"] = self.array
        else:
            out["columns"] = list(self.columns)
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class OutputSpec:
    """One graph output, returned as ``columns`` or as one ``array`` per row.

    ``classes`` are the keys of a ZipMap output (seq(map)), one column each; for a tensor
    output they only name the default columns (``name_class``).
    """

    name: str
    dtype: str | None = None
    shape: Shape | None = None
    columns: tuple[str, ...] = ()
    array: str | None = None
    classes: tuple[str | int, ...] = ()

    @property
    def resolved(self) -> bool:
        return bool(self.columns) or self.array is not None

    @property
    def result_columns(self) -> tuple[str, ...]:
        return (self.array,) if self.array is not None else self.columns

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype,
                               "shape": None if self.shape is None else list(self.shape)}
        if self.classes:
            out["classes"] = list(self.classes)
        if self.array is not None:
            out["array"] = self.array
        elif self.columns:
            out["columns"] = list(self.columns)
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class ModelCard:
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    # Descriptive fields (task, description, trained_on, estimator, held_out_auc...).
    about: Mapping[str, Any] = field(default_factory=dict)
    # The format the card was written in (1 is converted to 2 when read).
    written_as: int = 2

    @property
    def features(self) -> tuple[str, ...]:
        """Every table column the model reads, in input order, each once."""
        return tuple(dict.fromkeys(c for i in self.inputs for c in i.columns))

    @property
    def arrays(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.array for i in self.inputs if i.array is not None))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The result's columns: each output's columns, or its name for a per-row array."""
        return tuple(c for o in self.outputs for c in o.result_columns)

    @property
    def raw(self) -> dict[str, Any]:
        """The card as written in format 2 (what ``to_json`` returns)."""
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, "name": self.name, **dict(self.about),
                "inputs": [i.to_json() for i in self.inputs],
                "outputs": [o.to_json() for o in self.outputs]}

    def with_outputs(self, outputs: tuple[OutputSpec, ...]) -> ModelCard:
        return replace(self, outputs=outputs)

    @classmethod
    def from_json(cls, document: Any, *, source: str) -> ModelCard:
        problems: list[str] = []
        card = _parse(document, problems)
        if problems or card is None:
            raise CardError(f"{source}: model card is not usable ({'; '.join(problems)})")
        return card

    @classmethod
    def from_text(cls, text: str | bytes, *, source: str) -> ModelCard:
        try:
            document = json.loads(text)
        except ValueError as err:
            raise CardError(f"{source}: model card is not JSON ({err})") from None
        return cls.from_json(document, source=source)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, source: str) -> ModelCard:
        text = metadata.get(CARD_METADATA_KEY)
        if text is None:
            raise CardError(f"{source}: the model carries no card (ONNX metadata "
                            f"'{CARD_METADATA_KEY}'), so its inputs cannot be checked")
        return cls.from_text(text, source=source)


# -- parsing: every problem is collected, so one error names them all ----------------------

def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _names(value: Any, what: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(_text(v) for v in value):
        problems.append(f"{what} must be a non-empty list of names")
        return ()
    if len(set(value)) != len(value):
        problems.append(f"{what} must be distinct")
    return tuple(value)


def _shape(value: Any, what: str, problems: list[str]) -> Shape | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
            for d in value):
        problems.append(f"{what}: shape must be a list of sizes or null")
        return None
    return tuple(value)


def _dtype(value: Any, what: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    found = element(value) if isinstance(value, str) else None
    if found is None:
        problems.append(f"{what}: unknown dtype {value!r}")
        return None
    return found.name


def _input(item: Any, problems: list[str]) -> InputSpec | None:
    if not isinstance(item, dict) or not _text(item.get("name")):
        problems.append("every input needs a name")
        return None
    what = f"input '{item['name']}'"
    dtype = _dtype(item.get("dtype"), what, problems)
    shape = _shape(item.get("shape"), what, problems)
    if ("columns" in item) == ("array" in item):
        problems.append(f"{what} needs either columns or an array")
        return None
    if "array" in item:
        if not _text(item["array"]):
            problems.append(f"{what}: array must be a name")
        return InputSpec(item["name"], dtype, shape, array=item["array"])
    columns = _names(item["columns"], f"{what}: columns", problems)
    if shape is not None and columns:
        if len(shape) not in (1, 2):
            problems.append(f"{what}: columns feed 1-D or 2-D inputs, not shape "
                            f"{list(shape)} (feed it from an array)")
        elif len(shape) == 1 and len(columns) != 1:
            problems.append(f"{what}: a 1-D input takes one column, not {len(columns)}")
        elif len(shape) == 2 and shape[1] is not None and shape[1] != len(columns):
            problems.append(f"{what}: shape takes {shape[1]} columns, {len(columns)} listed")
    return InputSpec(item["name"], dtype, shape, columns=columns)


def _output(item: Any, problems: list[str]) -> OutputSpec | None:
    if not isinstance(item, dict) or not _text(item.get("name")):
        problems.append("every output needs a name")
        return None
    what = f"output '{item['name']}'"
    if "columns" in item and "array" in item:
        problems.append(f"{what} takes columns or an array, not both")
    classes = item.get("classes") or []
    if not isinstance(classes, list) or not all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in classes):
        problems.append(f"{what}: classes must be a list of names or numbers")
        classes = []
    columns = _names(item["columns"], f"{what}: columns", problems) if "columns" in item else ()
    if "array" in item and not _text(item["array"]):
        problems.append(f"{what}: array must be a name")
    return OutputSpec(item["name"], _dtype(item.get("dtype"), what, problems),
                      _shape(item.get("shape"), what, problems), columns,
                      item.get("array"), tuple(classes))


def _from_format_1(document: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The first format: one input tensor of ``feature_dtype`` fed from ``feature_columns``."""
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        problems.append("a format 1 card names exactly one input")
        return {**document, "inputs": [], "outputs": []}
    features = document["feature_columns"]
    width = len(features) if isinstance(features, list) else None
    first = {"name": inputs[0].get("name"), "dtype": document.get("feature_dtype", "float32"),
             "shape": [None, width], "columns": features}
    outputs = []
    for item in document.get("outputs") or []:
        if isinstance(item, dict) and "columns" not in item and item.get("classes"):
            item = {**item, "columns": [f"{item.get('name')}_{c}" for c in item["classes"]]}
        elif isinstance(item, dict) and "columns" not in item:
            item = {**item, "columns": [item.get("name")]}
        outputs.append(item)
    return {**document, "inputs": [first], "outputs": outputs}


def _parse(document: Any, problems: list[str]) -> ModelCard | None:
    if not isinstance(document, dict):
        problems.append("a card is a JSON object")
        return None
    written = document.get("format")
    if written is None and "feature_columns" in document:
        document, version = _from_format_1(document, problems), 1
    elif written == CARD_FORMAT:
        version = 2
    else:
        problems.append(f"unknown card format {written!r} (expected {CARD_FORMAT!r})")
        return None
    if not _text(document.get("name")):
        problems.append("the card needs a name")
    raw_inputs, raw_outputs = document.get("inputs"), document.get("outputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        problems.append("the card needs a list of inputs")
        raw_inputs = []
    if not isinstance(raw_outputs, list) or not raw_outputs:
        problems.append("the card needs a list of outputs")
        raw_outputs = []
    inputs = tuple(i for i in (_input(item, problems) for item in raw_inputs) if i)
    outputs = tuple(o for o in (_output(item, problems) for item in raw_outputs) if o)
    for kind, names in (("input", [i.name for i in inputs]), ("output", [o.name for o in outputs])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append(f"{kind} name(s) listed twice: {', '.join(twice)}")
    columns = [c for o in outputs for c in o.result_columns]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        problems.append(f"output column(s) named twice: {', '.join(map(str, twice))}")
    about = {k: v for k, v in document.items() if k not in _STRUCTURE}
    return ModelCard(str(document.get("name")), inputs, outputs, about, version)
