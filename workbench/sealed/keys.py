"""Session keys as the other parts of the product carry them: hex points and JWKs."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from workbench.sealed.channel import public_point, session_fingerprint

POINT_BYTES = 65


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed point; ValueError if it is not one."""
    if len(point) != POINT_BYTES or point[0] != 4:
        raise ValueError(f"a session key is an uncompressed P-256 point of {POINT_BYTES} "
                         "bytes")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def key_from_jwk(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a JWK's x and y; ValueError if it is not one."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("the kernel's key must be an EC P-256 JWK")
    x, y = _b64url(str(jwk.get("x", ""))), _b64url(str(jwk.get("y", "")))
    if len(x) != 32 or len(y) != 32:
        raise ValueError("an EC P-256 JWK has 32-byte x and y")
    return key_from_point(b"\x04" + x + y)


def sealed_fingerprint(session_point: bytes, tee_pubkey: dict[str, Any]) -> str:
    """The fingerprint of the session between a frontend's key and a kernel's key."""
    return session_fingerprint(key_from_point(session_point), key_from_jwk(tee_pubkey))


__all__ = ["key_from_jwk", "key_from_point", "public_point", "sealed_fingerprint"]
