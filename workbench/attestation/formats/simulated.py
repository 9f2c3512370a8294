"""The simulated TEE's evidence envelope: strict JSON around a JWS (ES256), parsed without crypto.

Shape (every key required, no other keys allowed, at every level)::

    {
      "type": "workbench-simulated-evidence",
      "version": 1,
      "simulated": true,
      "protected": "<base64url JWS protected header>",
      "payload": "<base64url JWS payload>",
      "signature": "<base64url ECDSA signature, r||s>"
    }

The protected header is ``{"alg": "ES256", "typ": "workbench-simulated-evidence",
"jwk": {P-256 public key}}`` and the payload the claims listed in ``PAYLOAD_FIELDS``.
Platform keys made before ES256 became the default are P-384 and sign ES384; both are
accepted, each only with its own curve (``SIGNATURE_ALGORITHMS``).
``protected.payload.signature`` is a compact JWS, which ``verify.simulated`` checks with
jwcrypto. This module only decides whether the bytes have that shape.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workbench.attestation.formats import strict_json
from workbench.attestation.formats.errors import MalformedEvidence

ENVELOPE_TYPE = "workbench-simulated-evidence"
ENVELOPE_VERSION = 1
# Real envelopes are about 1.5 KiB; the bound keeps hostile input cheap to refuse.
MAX_ENVELOPE_BYTES = 64 * 1024

ENVELOPE_FIELDS = frozenset({"type", "version", "simulated", "protected", "payload", "signature"})
HEADER_FIELDS = frozenset({"alg", "typ", "jwk"})
JWK_FIELDS = frozenset({"kty", "crv", "x", "y"})
PAYLOAD_FIELDS = frozenset(
    {"tee", "simulated", "measurement", "report_data", "platform_key", "timestamp", "runtime",
     "debug", "covers"}
)
RUNTIME_FIELDS = frozenset({"implementation", "version"})
COVERS_FIELDS = frozenset({"package_files", "kernelspec_files", "interpreter"})

# JWS alg -> (JWK curve, coordinate bytes, r||s signature bytes). New platform keys are
# P-256 (the curve of SGX and TDX quote signatures; a P-384 verify costs a broker about ten
# times as much CPU); P-384 keys created by earlier versions keep signing ES384.
SIGNATURE_ALGORITHMS: dict[str, tuple[str, int, int]] = {
    "ES256": ("P-256", 32, 64),
    "ES384": ("P-384", 48, 96),
}

_HEX = {48: re.compile(r"[0-9a-f]{96}"), 32: re.compile(r"[0-9a-f]{64}"),
        64: re.compile(r"[0-9a-f]{128}")}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


@dataclass(frozen=True)
class SimulatedEvidence:
    """A structurally valid simulated-TEE envelope; nothing here is trusted yet."""

    measurement: str
    report_data: bytes
    platform_key: str
    timestamp: datetime
    runtime: dict[str, str]
    covers: dict[str, Any]
    public_jwk: dict[str, str]
    alg: str
    compact_jws: str
    payload: dict[str, Any]


def _fail(reason: str) -> MalformedEvidence:
    return MalformedEvidence(f"simulated evidence: {reason}")


def _reject_constant(name: str) -> None:
    raise _fail(f"JSON constant {name} is not allowed")


def _duplicate(key: str) -> MalformedEvidence:
    return _fail(f"duplicate key '{key}'")


def _loads(text: str | bytes, what: str) -> Any:
    try:
        return strict_json.loads(text, on_duplicate=_duplicate, parse_constant=_reject_constant)
    except MalformedEvidence:
        raise
    except (ValueError, RecursionError) as err:
        raise _fail(f"{what} is not valid JSON ({err})") from None


def _object(value: Any, fields: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} must be a JSON object")
    missing = sorted(fields - value.keys())
    if missing:
        raise _fail(f"{what} lacks {', '.join(repr(m) for m in missing)}")
    unknown = sorted(value.keys() - fields)
    if unknown:
        raise _fail(f"{what} has unknown key {', '.join(repr(u) for u in unknown)}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a string")
    return value


def _b64url(value: Any, what: str) -> bytes:
    text = _string(value, what)
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _fail(f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise _fail(f"{what} is not base64url ({err})") from None


def _hex(value: Any, size: int, what: str) -> str:
    text = _string(value, what)
    if not _HEX[size].fullmatch(text):
        raise _fail(f"{what} must be {size * 2} lower-case hex digits")
    return text


def _is_true(value: Any) -> bool:
    return value is True


def _timestamp(value: Any) -> datetime:
    text = _string(value, "payload 'timestamp'")
    if not _TIMESTAMP.fullmatch(text):
        raise _fail("payload 'timestamp' must be RFC 3339 UTC, e.g. 2025-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as err:
        raise _fail(f"payload 'timestamp' is not a date ({err})") from None


def _parse_header(raw: bytes) -> tuple[str, dict[str, str]]:
    header = _object(_loads(raw, "protected header"), HEADER_FIELDS, "protected header")
    alg = header["alg"]
    if not isinstance(alg, str) or alg not in SIGNATURE_ALGORITHMS:
        raise _fail(f"protected header 'alg' must be one of {', '.join(SIGNATURE_ALGORITHMS)}")
    if header["typ"] != ENVELOPE_TYPE:
        raise _fail(f"protected header 'typ' must be {ENVELOPE_TYPE}")
    curve, coordinate_bytes, _ = SIGNATURE_ALGORITHMS[alg]
    jwk = _object(header["jwk"], JWK_FIELDS, "protected header 'jwk'")
    if jwk["kty"] != "EC" or jwk["crv"] != curve:
        raise _fail(f"platform key must be an EC {curve} key for {alg}")
    for coordinate in ("x", "y"):
        if len(_b64url(jwk[coordinate], f"jwk '{coordinate}'")) != coordinate_bytes:
            raise _fail(f"jwk '{coordinate}' must be {coordinate_bytes} bytes for {alg}")
    return alg, dict(jwk)


def _parse_payload(raw: bytes) -> dict[str, Any]:
    payload = _object(_loads(raw, "payload"), PAYLOAD_FIELDS, "payload")
    if payload["tee"] != "simulated":
        raise _fail("payload 'tee' must be 'simulated'")
    if not _is_true(payload["simulated"]):
        raise _fail("payload 'simulated' must be true")
    if payload["debug"] is not False:
        raise _fail("payload 'debug' must be false")
    _hex(payload["measurement"], 48, "payload 'measurement'")
    _hex(payload["report_data"], 64, "payload 'report_data'")
    _hex(payload["platform_key"], 32, "payload 'platform_key'")
    runtime = _object(payload["runtime"], RUNTIME_FIELDS, "payload 'runtime'")
    for name in RUNTIME_FIELDS:
        _string(runtime[name], f"runtime '{name}'")
    covers = _object(payload["covers"], COVERS_FIELDS, "payload 'covers'")
    for name in ("package_files", "kernelspec_files"):
        count = covers[name]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _fail(f"covers '{name}' must be a non-negative integer")
    _string(covers["interpreter"], "covers 'interpreter'")
    return payload


def parse_simulated(data: bytes) -> SimulatedEvidence:
    """Parse a simulated-TEE envelope. Raises MalformedEvidence on anything unexpected."""
    if not isinstance(data, bytes | bytearray):
        raise _fail("evidence must be bytes")
    if not data:
        raise _fail("empty input")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _fail(f"{len(data)} bytes is larger than the {MAX_ENVELOPE_BYTES}-byte limit")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("not UTF-8 text") from None
    envelope = _object(_loads(text, "envelope"), ENVELOPE_FIELDS, "envelope")
    if envelope["type"] != ENVELOPE_TYPE:
        raise _fail(f"envelope 'type' must be '{ENVELOPE_TYPE}'")
    version = envelope["version"]
    if isinstance(version, bool) or version != ENVELOPE_VERSION:
        raise _fail(f"unsupported envelope version {version!r} (expected {ENVELOPE_VERSION})")
    if not _is_true(envelope["simulated"]):
        raise _fail("envelope 'simulated' must be true")
    alg, jwk = _parse_header(_b64url(envelope["protected"], "envelope 'protected'"))
    payload = _parse_payload(_b64url(envelope["payload"], "envelope 'payload'"))
    signature_bytes = SIGNATURE_ALGORITHMS[alg][2]
    if len(_b64url(envelope["signature"], "envelope 'signature'")) != signature_bytes:
        raise _fail(f"signature must be {signature_bytes} bytes ({alg} r||s)")
    return SimulatedEvidence(
        measurement=payload["measurement"],
        report_data=bytes.fromhex(payload["report_data"]),
        platform_key=payload["platform_key"],
        timestamp=_timestamp(payload["timestamp"]),
        runtime=dict(payload["runtime"]),
        covers=dict(payload["covers"]),
        public_jwk=jwk,
        alg=alg,
        compact_jws=".".join(envelope[k] for k in ("protected", "payload", "signature")),
        payload=payload,
    )
