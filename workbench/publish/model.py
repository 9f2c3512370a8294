"""A model to publish: the ONNX bytes as they will be sealed, with a card the kernel checks.

:func:`model_bytes` is the one place that decides the card. Today: a card given as JSON is
embedded; ``features`` builds a format-1 card for a model with one float input fed from
those columns; otherwise the model must carry a card already. (When cards are derived from
the graph, ``workbench.inference``'s ``derive_card`` replaces the ``features`` branch.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
from workbench.inference.card import CARD_METADATA_KEY, ModelCard, embed_card
from workbench.sealing.files import open_file, seal_bytes
from workbench.sealing.formats import Kind, detect
from workbench.sealing.keyring import Keyring

CARD_MAX_BYTES = 1024 * 1024
# ONNX element types a format-1 card can feed (its features become one float matrix).
_FLOAT_TYPES = {1: "float32", 11: "float64"}


def read_model(source: Path) -> bytes:
    try:
        kind = detect(source)
    except FileNotFoundError:
        raise InputError(about(source, "file not found")) from None
    except OSError as err:
        raise InputError(about(source, f"cannot read ({err.strerror or err})")) from None
    if kind is not Kind.ONNX:
        raise InputError(about(source, f"is {kind.value}, not an ONNX model"))
    return source.read_bytes()


def read_card(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()[: CARD_MAX_BYTES + 1]
    except OSError as err:
        raise InputError(about(path, f"cannot read the card ({err.strerror or err})")) from None
    if len(raw) > CARD_MAX_BYTES:
        raise InputError(about(path, f"card is larger than {CARD_MAX_BYTES} bytes"))
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(about(path, f"card is not valid JSON ({err})")) from None
    if not isinstance(document, dict):
        raise InputError(about(path, "a card is a JSON object"))
    return document


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value_info.type.tensor_type.shape.dim]


def features_card(data: bytes, features: Sequence[str], name: str, source: str
                  ) -> dict[str, Any]:
    """A format-1 card for a model taking one float matrix whose columns are ``features``."""
    import onnx

    graph = onnx.load_from_string(data).graph
    initialised = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    if len(inputs) != 1:
        raise WorkbenchError(f"{source}: --features feeds one input, the model takes "
                             f"{len(inputs)} ({', '.join(i.name for i in inputs)}); give "
                             "a card with --card")
    tensor = inputs[0].type.tensor_type
    dtype = _FLOAT_TYPES.get(tensor.elem_type)
    if dtype is None:
        raise WorkbenchError(f"{source}: input '{inputs[0].name}' is not a float tensor; "
                             "--features feeds float32 or float64 columns")
    dims = _dims(inputs[0])
    if len(dims) != 2 or dims[1] not in (None, len(features)):
        raise WorkbenchError(f"{source}: input '{inputs[0].name}' has shape "
                             f"{['N' if d is None else d for d in dims]}, not "
                             f"[N, {len(features)}] for the {len(features)} feature(s) given")
    outputs = []
    for output in graph.output:
        if not output.type.HasField("tensor_type"):
            continue  # sequences and maps (e.g. ZipMap) need a card of their own
        width = _dims(output)[1:2]
        wide = bool(width) and isinstance(width[0], int) and width[0] > 1
        outputs.append({"name": output.name,
                        "dtype": _onnx_dtype(output.type.tensor_type.elem_type),
                        "columns": ([f"{output.name}_{j}" for j in range(width[0])]
                                    if wide else [output.name])})
    if not outputs:
        raise WorkbenchError(f"{source}: no tensor output to return; give a card with --card")
    return {"name": name, "inputs": [{"name": inputs[0].name, "dtype": dtype,
                                      "shape": [None, len(features)]}],
            "feature_columns": list(features), "feature_dtype": dtype, "outputs": outputs,
            "card_from": "workbench publish model --features"}


def _onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return "unknown"


def _carried_card(data: bytes, source: str) -> None:
    import onnx

    metadata = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    if CARD_METADATA_KEY not in metadata:
        raise InputError(f"{source}: the model carries no card ('{CARD_METADATA_KEY}'), so the "
                         "kernel could not check its inputs: give --card CARD.json or "
                         "--features a,b,c")
    ModelCard.from_metadata(metadata, source=source)


def model_bytes(source: Path, *, name: str, card: Path | None = None,
                features: Sequence[str] | None = None) -> bytes:
    """The seam: the model's bytes as they will be sealed, carrying their card."""
    data = read_model(source)
    if card is not None:
        document = read_card(card)
        ModelCard.from_json(document, source=str(card))
        return embed_card(data, document)
    if features:
        return embed_card(data, features_card(data, features, name, str(source)))
    _carried_card(data, str(source))
    return data


def check_loadable(data: bytes, name: str, source: str) -> None:
    """Load the model as the kernel will (onnxruntime, card against graph): a card that
    does not fit is refused here rather than in the analyst's kernel."""
    from workbench.inference.model import Model

    Model(data, name=name, source=source)


@dataclass(frozen=True)
class ModelAsset:
    name: str
    original: str
    data: bytes

    @classmethod
    def read(cls, source: str | Path, name: str, *, card: Path | None = None,
             features: Sequence[str] | None = None) -> ModelAsset:
        source = Path(source)
        data = model_bytes(source, name=name, card=card, features=features)
        check_loadable(data, name, str(source))
        return cls(name, source.name, data)

    def seal(self, out: Path, keyring: Keyring) -> None:
        seal_bytes(self.data, out, name=self.name, original=self.original, keyring=keyring)

    def same_as(self, sealed: Path, keyring: Keyring) -> bool:
        try:
            return open_file(sealed, self.name, keyring) == self.data
        except WorkbenchError:
            return False
