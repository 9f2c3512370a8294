"""What a checker trusts: the broker's signing keys, the verifiers' inputs, its connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jwcrypto.jwk import JWK


@dataclass(frozen=True)
class TransportContext:
    """The CurveZMQ server key the checking side's own connection to the kernel uses.

    ``server_key`` is the raw 32-byte key (None: that connection is not encrypted with a key
    only the kernel holds); ``source`` names the connection for messages.
    """

    server_key: bytes | None
    source: str


@dataclass(frozen=True)
class TrustSettings:
    """What the checker trusts: the broker's signing keys and the evidence verifiers' inputs.

    ``transport``: the connection whose key the kernel's evidence must bind; None when the
    checking side has no connection to the kernel it could name (the check is then skipped).
    """

    broker_keys: Sequence[JWK]
    broker_url: str = ""
    key_source: str = ""
    key_problem: str = ""
    simulated_keys: Iterable[Any] | None = None
    collateral: Any = None
    transport: TransportContext | None = None
