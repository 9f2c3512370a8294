"""Resources leave the broker only as JWE encrypted to the attested ``tee-pubkey``.

Trustee answers a resource request with a JWE in *flattened JSON* form whose protected
header carries everything (``alg``, ``enc`` and, for ECDH-ES, ``epk``), which is exactly
the compact form's five parts under JSON names. jwcrypto builds the compact form (it moves
``epk`` into the protected header for that), and the five parts are renamed, nothing more.
"""

from __future__ import annotations

import json
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwe import JWE
from jwcrypto.jwk import JWK

from workbench.protocol.claims import KEY_ALG

ENC = "A256GCM"
MIN_RSA_BITS = 2048
# (kty, alg) -> curves allowed (EC) or None (RSA, checked by size).
KEY_ALGORITHMS: dict[tuple[str, str], frozenset[str] | None] = {
    ("EC", KEY_ALG): frozenset({"P-256", "P-384", "P-521"}),
    ("RSA", "RSA-OAEP-256"): None,
}
FLATTENED_PARTS = ("protected", "encrypted_key", "iv", "ciphertext", "tag")


class BadTeeKey(ValueError):
    """The tee-pubkey cannot receive a JWE from this broker."""


def check_tee_pubkey(jwk: Any) -> JWK:
    """Parse and vet a ``tee-pubkey``; the message names what is wrong."""
    if not isinstance(jwk, dict):
        raise BadTeeKey("tee-pubkey must be a JWK object")
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if (kty, alg) not in KEY_ALGORITHMS:
        supported = ", ".join(f"{k}/{a}" for k, a in KEY_ALGORITHMS)
        raise BadTeeKey(f"tee-pubkey kty/alg {kty}/{alg} is not supported (use {supported})")
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi")):
        raise BadTeeKey("tee-pubkey contains private key members; send the public key only")
    curves = KEY_ALGORITHMS[(kty, alg)]
    if curves is not None and jwk.get("crv") not in curves:
        raise BadTeeKey(f"tee-pubkey curve {jwk.get('crv')} is not one of {sorted(curves)}")
    try:
        key = JWK(**jwk)
        # Building the public key checks it (an EC point off the curve fails here, not later).
        public = key.get_op_key("wrapKey")
    except (JWException, ValueError, TypeError, KeyError) as err:
        raise BadTeeKey(f"tee-pubkey is not a valid {kty} JWK ({err})") from None
    if kty == "RSA" and public.key_size < MIN_RSA_BITS:
        raise BadTeeKey(f"tee-pubkey RSA modulus is shorter than {MIN_RSA_BITS} bits")
    return key


def encrypt_to(payload: bytes, key: JWK, alg: str) -> dict[str, str]:
    """``payload`` as a flattened-JSON JWE (Trustee's ``Response``) for a checked tee key."""
    token = JWE(payload, protected=json.dumps({"alg": alg, "enc": ENC}))
    token.add_recipient(key)
    return dict(zip(FLATTENED_PARTS, token.serialize(compact=True).split("."), strict=True))
