"""What the broker adds to an EAR token beyond EAR itself, and the key clients attest with.

The broker states in its token which kernel key the resources will be encrypted to, which
transport key the evidence binds, and its verdict per named resource; the kernel, its
clients and the lab server read those claims by these names.
"""

from __future__ import annotations

from typing import Any

# The kernel's ephemeral public key (a JWK), as the broker found it bound in the evidence.
TEE_PUBKEY_CLAIM = "tee-pubkey"
# Hex of the transport key (the kernel's CurveZMQ public key) the evidence binds; "" if none.
TRANSPORT_KEY_CLAIM = "workbench.transport-key"
# Hex of the sealed-session key (a frontend's P-256 point) the evidence binds; "" if none.
SESSION_KEY_CLAIM = "workbench.session-key"
# Who certified the sealed session: {"fingerprint", "name" (or null), "standing"}.
ANALYST_CLAIM = "workbench.analyst"
# {resource path: {status, policy_id, failed_rules}} for each resource the session named.
RESOURCES_CLAIM = "workbench.resources"

# The JWE key management algorithm of an EC tee-pubkey (Trustee's default).
KEY_ALG = "ECDH-ES+A256KW"


def tee_pubkey_jwk(public: dict[str, Any]) -> dict[str, Any]:
    """The ``tee-pubkey`` a client sends for its EC public key (only the public members)."""
    return {"kty": "EC", "crv": public["crv"], "alg": KEY_ALG, "x": public["x"],
            "y": public["y"]}
