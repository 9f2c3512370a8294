"""The vocabulary the broker, its clients and the lab server share (Trustee's ``kbs-types``).

Wire models of the RCAR protocol, the token claims the broker adds to EAR, the broker's
error kinds with their HTTP statuses, and the one way to fetch the broker's public keys.
Nothing here imports anything else of the workbench, so every side can depend on it:
``kbs`` (the server), ``brokerclient`` and ``kernel`` (clients), ``labserver`` (a checker).
"""

from workbench.protocol.claims import (
    KEY_ALG,
    RESOURCES_CLAIM,
    TEE_PUBKEY_CLAIM,
    TRANSPORT_KEY_CLAIM,
    tee_pubkey_jwk,
)
from workbench.protocol.errors import ERROR_STATUS, ERROR_TYPE_PREFIX, ErrorKind
from workbench.protocol.jwks import JWKS_PATH, JwksProblem, fetch_jwks, fetch_jwks_async
from workbench.protocol.rcar import PROTOCOL_VERSION, SESSION_COOKIE

__all__ = [
    "ERROR_STATUS", "ERROR_TYPE_PREFIX", "JWKS_PATH", "KEY_ALG", "PROTOCOL_VERSION",
    "RESOURCES_CLAIM", "SESSION_COOKIE", "TEE_PUBKEY_CLAIM", "TRANSPORT_KEY_CLAIM", "ErrorKind",
    "JwksProblem", "fetch_jwks", "fetch_jwks_async", "tee_pubkey_jwk",
]
