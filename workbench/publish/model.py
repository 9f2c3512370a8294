"""A model to publish: the ONNX bytes as they will be sealed, with a card the kernel checks.

:func:`model_bytes` decides the card as ``seal file`` does
(:func:`workbench.modelcard.attach.card_for_sealing`): a card given as JSON, else one
derived from the graph and the ``--features`` names, else the card the model carries, else
one derived from the graph alone; whichever it is, it is checked against the graph first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
from workbench.modelcard.attach import card_for_sealing
from workbench.sealing.files import open_file, seal_bytes
from workbench.sealing.formats import Kind, detect
from workbench.sealing.keyring import Keyring

CARD_MAX_BYTES = 1024 * 1024


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


def model_bytes(source: Path, *, name: str, card: Path | None = None,
                features: Sequence[str] | None = None) -> bytes:
    """The model's bytes as they will be sealed, carrying their checked card."""
    data = read_model(source)
    document = read_card(card) if card is not None else None
    return card_for_sealing(data, name=name, card=document, features=features,
                            source=str(source)).model_bytes


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
