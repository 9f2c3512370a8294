"""The card a model is sealed with: the one given, the one it carries, or one derived.

The data owner's side (``seal file``, ``publish model``): whichever card it is, it is
checked against the graph before the model is sealed, so a model that would be refused at
load in the kernel is refused here instead, with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.modelcard.check import resolve
from workbench.modelcard.derive import derive_from_model
from workbench.modelcard.document import CardError, ModelCard
from workbench.modelcard.embed import carried_card, parse_model, set_card
from workbench.modelcard.signature import signature_from_onnx

GIVEN, CARRIED, DERIVED = "given", "carried", "derived"


@dataclass(frozen=True)
class CardedModel:
    model_bytes: bytes  # the model with its card embedded
    card: ModelCard  # completed from the graph
    origin: str  # GIVEN | CARRIED | DERIVED


def card_for_sealing(model_bytes: bytes, *, name: str, card: Any = None,
                     features: Sequence[str] | None = None,
                     source: str = "the model") -> CardedModel:
    """The model with a checked card inside.

    ``card`` (a card document, e.g. parsed from CARD.json) wins; else ``features`` derive
    one; else the card the model carries; else one is derived from the graph alone.
    """
    if card is not None and features:
        raise CardError("give a card or feature names, not both")
    model = parse_model(model_bytes, source=source)
    signature = signature_from_onnx(model)
    if card is not None:
        chosen, origin = ModelCard.from_json(card, source=source), GIVEN
    elif features:
        chosen, origin = derive_from_model(model, features, name=name, source=source), DERIVED
    elif (carried := carried_card(model, source=source)) is not None:
        return CardedModel(model_bytes, resolve(carried, signature, source=source), CARRIED)
    else:
        chosen, origin = derive_from_model(model, name=name, source=source), DERIVED
    resolved = resolve(chosen, signature, source=source)
    set_card(model, resolved)
    return CardedModel(model.SerializeToString(), resolved, origin)
