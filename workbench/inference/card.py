"""The model card: which columns a model reads, of which types, and what it returns.

A card travels inside the sealed ONNX model (metadata property ``workbench.card``), so it is
authenticated with the model; inputs are checked against it before any inference, and a
mismatch names every missing column and every column of the wrong type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError

CARD_METADATA_KEY = "workbench.card"
# numpy kinds a float32 feature can be computed from: bool, signed/unsigned int, float.
NUMERIC_KINDS = frozenset("biuf")


class FeatureMismatch(WorkbenchError):
    """The input does not carry what the model's card says it reads."""


@dataclass(frozen=True)
class OutputSpec:
    name: str
    dtype: str
    columns: tuple[str, ...]

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> OutputSpec:
        name = str(item["name"])
        columns = item.get("columns")
        if columns is None and item.get("classes"):
            columns = [f"{name}_{c}" for c in item["classes"]]
        return cls(name, str(item.get("dtype", "")), tuple(columns or [name]))


@dataclass(frozen=True)
class ModelCard:
    name: str
    input_name: str
    features: tuple[str, ...]
    feature_dtype: str
    outputs: tuple[OutputSpec, ...]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, document: dict[str, Any], *, source: str) -> ModelCard:
        try:
            inputs = document["inputs"]
            if len(inputs) != 1:
                raise ValueError("exactly one input tensor is supported")
            features = tuple(str(c) for c in document["feature_columns"])
            if not features or len(set(features)) != len(features):
                raise ValueError("feature_columns must be distinct names")
            outputs = tuple(OutputSpec.from_json(o) for o in document["outputs"])
            return cls(str(document["name"]), str(inputs[0]["name"]), features,
                       str(document.get("feature_dtype", "float32")), outputs, document)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise WorkbenchError(f"{source}: model card is not usable ({err})") from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, source: str) -> ModelCard:
        text = metadata.get(CARD_METADATA_KEY)
        if text is None:
            raise WorkbenchError(f"{source}: the model carries no card (ONNX metadata "
                                 f"'{CARD_METADATA_KEY}'), so its inputs cannot be checked")
        try:
            document = json.loads(text)
        except ValueError as err:
            raise WorkbenchError(f"{source}: model card is not JSON ({err})") from None
        return cls.from_json(document, source=source)

    def output_columns(self) -> list[str]:
        return [c for o in self.outputs for c in o.columns]

    def check(self, dtypes: Mapping[str, np.dtype | None], *, what: str) -> None:
        """Refuse input lacking a feature or holding one that is not numeric.

        ``dtypes`` maps each available column to its numpy dtype (None: not representable
        as a numpy number, e.g. strings or nested Arrow types).
        """
        missing = [c for c in self.features if c not in dtypes]
        wrong = [f"{c} ({_describe(dtypes[c])})" for c in self.features
                 if c in dtypes and not _numeric(dtypes[c])]
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if wrong:
            problems.append(f"column(s) of the wrong type {', '.join(wrong)}; "
                            f"expected numbers convertible to {self.feature_dtype}")
        if problems:
            raise FeatureMismatch(f"model '{self.name}' cannot score {what}: "
                                  + "; ".join(problems))


def _numeric(dtype: np.dtype | None) -> bool:
    return dtype is not None and getattr(dtype, "kind", None) in NUMERIC_KINDS


def _describe(dtype: np.dtype | None) -> str:
    return "not numeric" if dtype is None else str(dtype)


def embed_card(model_bytes: bytes, card: dict[str, Any]) -> bytes:
    """The ONNX model with ``card`` stored in its metadata (the data owner's side)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for entry in list(model.metadata_props):
        if entry.key == CARD_METADATA_KEY:
            model.metadata_props.remove(entry)
    entry = model.metadata_props.add()
    entry.key = CARD_METADATA_KEY
    entry.value = json.dumps(card, sort_keys=True)
    return model.SerializeToString()
