"""What a checker is handed from the kernel: parsed strictly before anything is checked.

The kernel's ``evidence`` message on the ``workbench.attestation`` comm
(docs/comm-protocol.md), as the lab extension forwards it to the lab server or as a Python
client receives it. Nothing here is trusted: it is the input the checker verifies itself.
Parsing errors name the field and the problem in one line.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from workbench.attestation.tee.binding import SESSION_KEY_BYTES
from workbench.sealed.certificate import CertificateInvalid, SessionCertificate

# A simulated envelope is a few KiB and a TDX quote with its chain under 16 KiB; a report
# far above this is not one of ours.
MAX_EVIDENCE_BYTES = 512 * 1024
MAX_CERTS = 8
MAX_TOKEN_CHARS = 256 * 1024
MAX_NONCE_CHARS = 1024
MAX_TRANSPORT_KEY_BYTES = 4096
MAX_KERNEL_ID_CHARS = 128


class BadReport(ValueError):
    """The request body is not a kernel report this server can check."""


@dataclass(frozen=True)
class KernelReport:
    token: str
    tee_pubkey: dict[str, Any]
    evidence: bytes | None
    certs: tuple[bytes, ...]
    nonce: str | None
    transport_key: bytes
    # The sealed-session key a locked kernel's evidence binds (b"": not locked), and the
    # digest of the analyst's certificate of that session it binds too (b"": none).
    session_key: bytes = b""
    certificate_digest: bytes = b""


def _b64(value: Any, field: str, limit: int) -> bytes:
    if not isinstance(value, str):
        raise BadReport(f"{field} must be a base64 string")
    if len(value) > limit * 4 // 3 + 4:
        raise BadReport(f"{field} is larger than {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadReport(f"{field} is not valid base64") from None


def _session_key(value: Any) -> bytes:
    if value in (None, ""):
        return b""
    if not isinstance(value, str) or len(value) != 2 * SESSION_KEY_BYTES:
        raise BadReport(f"session_key must be the hex of a {SESSION_KEY_BYTES}-byte P-256 "
                        "point")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadReport("session_key is not valid hex") from None


def _certificate_digest(value: Any) -> bytes:
    if value is None:
        return b""
    try:
        return SessionCertificate.from_json(value).digest()
    except CertificateInvalid as err:
        raise BadReport(f"session_certificate: {err}") from None


def parse_report(body: Any) -> KernelReport:
    """The report in ``body`` (a decoded JSON object), or BadReport naming the bad field."""
    if not isinstance(body, dict):
        raise BadReport("request body must be a JSON object")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise BadReport("token is missing: the kernel has not attested yet")
    if len(token) > MAX_TOKEN_CHARS:
        raise BadReport(f"token is longer than {MAX_TOKEN_CHARS} characters")
    tee_pubkey = body.get("tee_pubkey")
    if not isinstance(tee_pubkey, dict) or not tee_pubkey:
        raise BadReport("tee_pubkey must be the kernel's public JWK (a JSON object)")
    evidence = body.get("evidence")
    data = None if evidence in (None, "") else _b64(evidence, "evidence", MAX_EVIDENCE_BYTES)
    certs = body.get("certs") or []
    if not isinstance(certs, list) or len(certs) > MAX_CERTS:
        raise BadReport(f"certs must be a list of at most {MAX_CERTS} base64 strings")
    nonce = body.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > MAX_NONCE_CHARS):
        raise BadReport(f"nonce must be a string of at most {MAX_NONCE_CHARS} characters")
    transport = body.get("transport_key") or ""
    if not isinstance(transport, str) or len(transport) > 2 * MAX_TRANSPORT_KEY_BYTES:
        raise BadReport("transport_key must be a hex string")
    try:
        transport_key = bytes.fromhex(transport)
    except ValueError:
        raise BadReport("transport_key is not valid hex") from None
    return KernelReport(
        token=token,
        tee_pubkey=tee_pubkey,
        evidence=data,
        certs=tuple(_b64(c, f"certs[{i}]", MAX_EVIDENCE_BYTES) for i, c in enumerate(certs)),
        nonce=nonce or None,
        transport_key=transport_key,
        session_key=_session_key(body.get("session_key")),
        certificate_digest=_certificate_digest(body.get("session_certificate")),
    )


def parse_kernel_id(body: Any) -> str | None:
    """The optional ``kernel_id``: which of this server's kernels sent the report live, so
    the server can compare the transport key the evidence binds with its own connection's."""
    kernel_id = body.get("kernel_id") if isinstance(body, dict) else None
    if kernel_id is None:
        return None
    if not isinstance(kernel_id, str) or not 0 < len(kernel_id) <= MAX_KERNEL_ID_CHARS:
        raise BadReport(f"kernel_id must be a string of 1 to {MAX_KERNEL_ID_CHARS} characters")
    return kernel_id
