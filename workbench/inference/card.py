"""The model card as the inference side uses it.

The card itself lives in :mod:`workbench.modelcard`, below both ``sealing`` and
``inference``: ``seal file --card`` checks and embeds cards without importing inference,
and a loaded model is checked against its card here. These are its public names.
"""

from __future__ import annotations

from workbench.inference.feeds import FeatureMismatch
from workbench.modelcard.check import CardMismatch
from workbench.modelcard.derive import derive_card
from workbench.modelcard.document import (
    CARD_FORMAT,
    CARD_METADATA_KEY,
    CardError,
    InputSpec,
    ModelCard,
    OutputSpec,
)
from workbench.modelcard.embed import embed_card

__all__ = ["CARD_FORMAT", "CARD_METADATA_KEY", "CardError", "CardMismatch", "FeatureMismatch",
           "InputSpec", "ModelCard", "OutputSpec", "derive_card", "embed_card"]
