"""Session certificates and signed approvals: the analyst's long-term key speaks for a session.

A sealed session's keys are made fresh by the frontend; on their own they say nothing about
who made them (the operator can make some too). The analyst's long-term key (EC P-256,
ECDSA; registered with the data owner, ``workbench kbs analyst add``) signs a certificate
naming the session's two public keys (the ECDH key the channel uses, and an ECDSA key that
signs approvals) and the kernel the session is for (the RFC 7638 thumbprint of its
attested key), so the certificate cannot be carried to another kernel. An approval is the
session signing key's signature over the request id, the resource, the kernel's key and
the hash of the token the analyst was shown.

Signatures are ES256 as JOSE and WebCrypto make them: raw ``r || s``, base64url.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from workbench.errors import WorkbenchError
from workbench.sealed.channel import public_point
from workbench.sealed.keys import key_from_jwk, key_from_point

VERSION = 1
COORDINATE = 32
CERTIFICATE_MEMBERS = frozenset({"v", "analyst_key", "session_key", "signing_key",
                                 "kernel_key", "issued_at", "signature"})


class CertificateInvalid(WorkbenchError):
    """A certificate or approval signature that must not be believed; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def jwk_of(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    point = public_point(key)
    return {"kty": "EC", "crv": "P-256", "x": _b64url(point[1:33]), "y": _b64url(point[33:])}


# RFC 7638 section 3.2: the members that make up each key type's thumbprint. A kernel's
# TEE key may be RSA (Trustee clients send one), so the table is not EC alone.
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of a JWK (base64url of SHA-256 over its required members)."""
    members = THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None:
        raise ValueError(f"JWK thumbprint: key type {jwk.get('kty')!r} is not one of "
                         f"{', '.join(THUMBPRINT_MEMBERS)}")
    missing = [k for k in members if k not in jwk]
    if missing:
        raise ValueError(f"JWK thumbprint: the {jwk['kty']} key lacks {', '.join(missing)}")
    return _b64url(hashlib.sha256(canonical({k: jwk[k] for k in members})).digest())


def fingerprint(jwk: dict[str, Any]) -> str:
    """``SHA256:`` and the thumbprint, as the broker's key fingerprint is written."""
    return "SHA256:" + thumbprint(jwk)


def sign(private: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
    return _b64url(r.to_bytes(COORDINATE, "big") + s.to_bytes(COORDINATE, "big"))


def verify(public: ec.EllipticCurvePublicKey, signature: str, message: bytes) -> bool:
    try:
        raw = _unb64url(signature)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 2 * COORDINATE:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:COORDINATE], "big"),
                               int.from_bytes(raw[COORDINATE:], "big"))
    try:
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SessionCertificate:
    analyst_key: dict[str, str]
    session_key: str
    signing_key: str
    kernel_key: str
    issued_at: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {"v": VERSION, "analyst_key": self.analyst_key, "session_key": self.session_key,
                "signing_key": self.signing_key, "kernel_key": self.kernel_key,
                "issued_at": self.issued_at}

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    def digest(self) -> bytes:
        """What the evidence binds of the certificate: SHA-256 of its canonical JSON."""
        return hashlib.sha256(canonical(self.to_json())).digest()

    @property
    def analyst_fingerprint(self) -> str:
        return fingerprint(self.analyst_key)

    @classmethod
    def from_json(cls, value: Any) -> SessionCertificate:
        """Parse strictly (members, types); the signature is checked by ``verify``."""
        if not isinstance(value, dict) or set(value) != CERTIFICATE_MEMBERS:
            raise CertificateInvalid("malformed", "a session certificate has exactly the "
                                     f"members {', '.join(sorted(CERTIFICATE_MEMBERS))}")
        if value["v"] != VERSION:
            raise CertificateInvalid("malformed", f"session certificate version {value['v']!r}"
                                                  f" is not {VERSION}")
        texts = ("session_key", "signing_key", "kernel_key", "issued_at", "signature")
        if not all(isinstance(value[k], str) for k in texts) \
                or not isinstance(value["analyst_key"], dict):
            raise CertificateInvalid("malformed", "a session certificate's keys are hex "
                                                  "points, a JWK and strings")
        analyst = {k: value["analyst_key"].get(k) for k in ("kty", "crv", "x", "y")}
        return cls(analyst, value["session_key"], value["signing_key"], value["kernel_key"],
                   value["issued_at"], value["signature"])

    def verify(self, *, session_key: str, kernel_key: str) -> None:
        """The analyst signed it, for this session key and this kernel; else raise."""
        try:
            analyst = key_from_jwk(self.analyst_key)
            key_from_point(bytes.fromhex(self.signing_key))
        except ValueError as err:
            raise CertificateInvalid("invalid", f"the session certificate's keys are "
                                                f"unusable: {err}") from None
        if not verify(analyst, self.signature, canonical(self.body())):
            raise CertificateInvalid("invalid", "the session certificate's signature does "
                                                "not verify under the analyst key it names")
        if self.kernel_key != kernel_key:
            raise CertificateInvalid("other-kernel", "the session certificate is bound to "
                                                     f"another kernel (key {self.kernel_key}, "
                                                     f"this kernel's is {kernel_key})")
        if self.session_key != session_key:
            raise CertificateInvalid("other-session", "the session certificate names another "
                                                      "session key than the one the evidence "
                                                      "binds")


def certify(analyst: ec.EllipticCurvePrivateKey, session_key: ec.EllipticCurvePublicKey,
            signing_key: ec.EllipticCurvePublicKey, kernel_jwk: dict[str, Any],
            now: datetime | None = None) -> SessionCertificate:
    """The analyst's certificate for one session with one kernel."""
    unsigned = SessionCertificate(
        jwk_of(analyst.public_key()), public_point(session_key).hex(),
        public_point(signing_key).hex(), thumbprint(kernel_jwk),
        (now or datetime.now(UTC)).isoformat(timespec="seconds"), "")
    return SessionCertificate(**{**unsigned.__dict__,
                                 "signature": sign(analyst, canonical(unsigned.body()))})


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def approval_message(request_id: str, resource: str, kernel_key: str, token_sha256: str
                     ) -> bytes:
    """What a signed approval signs (canonical JSON)."""
    return canonical({"v": VERSION, "approve": True, "request_id": request_id,
                      "resource": resource, "kernel_key": kernel_key,
                      "token_sha256": token_sha256})
