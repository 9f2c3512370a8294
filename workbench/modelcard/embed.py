"""The card inside the model: ONNX metadata ``workbench.card``, sealed and authenticated with it."""

from __future__ import annotations

import json
from typing import Any

from workbench.modelcard.document import CARD_METADATA_KEY, CardError, ModelCard


def parse_model(model_bytes: bytes, *, source: str) -> Any:
    """The ``onnx.ModelProto`` of ``model_bytes``, or one error saying it is not a model."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_from_string(model_bytes)
    except (DecodeError, ValueError):
        raise CardError(f"{source}: not an ONNX model (not an ONNX protobuf)") from None
    if not model.HasField("graph"):
        raise CardError(f"{source}: not an ONNX model (no graph)")
    return model


def metadata(model: Any) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def carried_card(model: Any, *, source: str) -> ModelCard | None:
    """The card an ``onnx.ModelProto`` carries, or None when it carries none."""
    props = metadata(model)
    if CARD_METADATA_KEY not in props:
        return None
    return ModelCard.from_metadata(props, source=source)


def set_card(model: Any, card: ModelCard | dict[str, Any]) -> None:
    """Store ``card`` in an ``onnx.ModelProto``'s metadata, replacing any card it carried."""
    document = card.to_json() if isinstance(card, ModelCard) else card
    for entry in list(model.metadata_props):
        if entry.key == CARD_METADATA_KEY:
            model.metadata_props.remove(entry)
    entry = model.metadata_props.add()
    entry.key = CARD_METADATA_KEY
    entry.value = json.dumps(document, sort_keys=True)


def embed_card(model_bytes: bytes, card: ModelCard | dict[str, Any]) -> bytes:
    """The ONNX model with ``card`` stored in its metadata (the data owner's side)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    set_card(model, card)
    return model.SerializeToString()
