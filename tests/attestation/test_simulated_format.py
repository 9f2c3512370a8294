"""The simulated envelope parser is strict: every deviation is MalformedEvidence with a reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.simulated import MAX_ENVELOPE_BYTES, parse_simulated
from workbench.attestation.tee.simulated import SimulatedProvider


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def envelope(tmp_path_factory: pytest.TempPathFactory) -> dict:
    provider = SimulatedProvider(
        home=tmp_path_factory.mktemp("home"),
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
    )
    return json.loads(provider.evidence(bytes(64)))


def _with(envelope: dict, **changes) -> bytes:
    return json.dumps({**envelope, **changes}).encode()


def _with_part(envelope: dict, part: str, change) -> bytes:
    decoded = json.loads(_unb64(envelope[part]))
    change(decoded)
    return _with(envelope, **{part: _b64(json.dumps(decoded).encode())})


def test_valid_envelope_parses(envelope: dict) -> None:
    assert parse_simulated(json.dumps(envelope).encode()).report_data == bytes(64)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"{", "envelope is not valid JSON"),
        (b"[]", "envelope must be a JSON object"),
        (b'{"a": NaN}', "JSON constant NaN is not allowed"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"{}", "envelope lacks 'payload', 'protected', 'signature', 'simulated'"),
        (b"[" * 100_000, "larger than the 65536-byte limit"),
    ],
)
def test_bytes_that_are_not_an_envelope(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvidence, match=reason):
        parse_simulated(data)


def test_deeply_nested_json_is_refused() -> None:
    with pytest.raises(MalformedEvidence, match="not valid JSON"):
        parse_simulated(b"[" * (MAX_ENVELOPE_BYTES - 1))


def test_not_bytes_is_refused() -> None:
    with pytest.raises(MalformedEvidence, match="evidence must be bytes"):
        parse_simulated("{}")  # type: ignore[arg-type]


ENVELOPE_CASES = [
    ({"extra": 1}, "envelope has unknown key 'extra'"),
    ({"type": "other"}, "envelope 'type' must be 'workbench-simulated-evidence'"),
    ({"version": 2}, "unsupported envelope version 2"),
    ({"version": True}, "unsupported envelope version True"),
    ({"simulated": False}, "envelope 'simulated' must be true"),
    ({"simulated": 1}, "envelope 'simulated' must be true"),
    ({"protected": 5}, "envelope 'protected' must be a string"),
    ({"protected": "a+b/"}, "envelope 'protected' is not unpadded base64url"),
    ({"protected": "abcde"}, "envelope 'protected' is not unpadded base64url"),
    ({"protected": _b64(b"not json")}, "protected header is not valid JSON"),
    ({"signature": _b64(b"short")}, r"signature must be 64 bytes \(ES256 r\|\|s\)"),
    ({"payload": _b64(b"[1]")}, "payload must be a JSON object"),
]


@pytest.mark.parametrize(("changes", "reason"), ENVELOPE_CASES)
def test_envelope_deviations(envelope: dict, changes: dict, reason: str) -> None:
    with pytest.raises(MalformedEvidence, match=reason):
        parse_simulated(_with(envelope, **changes))


def _set(key, value):
    def change(d: dict) -> None:
        d[key] = value
    return change


def _drop(key):
    def change(d: dict) -> None:
        del d[key]
    return change


def _set_jwk(key, value):
    def change(d: dict) -> None:
        d["jwk"][key] = value
    return change


HEADER_CASES = [
    (_set("alg", "none"), "protected header 'alg' must be one of ES256, ES384"),
    (_set("alg", "ES512"), "protected header 'alg' must be one of ES256, ES384"),
    (_set("alg", ["ES256"]), "protected header 'alg' must be one of ES256, ES384"),
    # The alg names the curve: an ES384 header over this P-256 key is refused.
    (_set("alg", "ES384"), "platform key must be an EC P-384 key for ES384"),
    (_set("typ", "JWT"), "protected header 'typ' must be workbench-simulated-evidence"),
    (_set("kid", "x"), "protected header has unknown key 'kid'"),
    (_drop("jwk"), "protected header lacks 'jwk'"),
    (_set_jwk("crv", "P-384"), "platform key must be an EC P-256 key for ES256"),
    (_set_jwk("kty", "RSA"), "platform key must be an EC P-256 key for ES256"),
    (_set_jwk("d", "AAAA"), "protected header 'jwk' has unknown key 'd'"),
    (_set_jwk("x", _b64(b"\x01" * 48)), "jwk 'x' must be 32 bytes for ES256"),
]


@pytest.mark.parametrize(("change", "reason"), HEADER_CASES)
def test_header_deviations(envelope: dict, change, reason: str) -> None:
    with pytest.raises(MalformedEvidence, match=reason):
        parse_simulated(_with_part(envelope, "protected", change))


def _set_nested(outer, key, value):
    def change(d: dict) -> None:
        d[outer][key] = value
    return change


PAYLOAD_CASES = [
    (_set("tee", "sgx"), "payload 'tee' must be 'simulated'"),
    (_set("simulated", False), "payload 'simulated' must be true"),
    (_set("debug", True), "payload 'debug' must be false"),
    (_set("debug", 0), "payload 'debug' must be false"),
    (_set("measurement", "AB" * 48), "payload 'measurement' must be 96 lower-case hex"),
    (_set("measurement", "ab" * 47), "payload 'measurement' must be 96 lower-case hex"),
    (_set("report_data", "00" * 32), "payload 'report_data' must be 128 lower-case hex"),
    (_set("platform_key", 7), "payload 'platform_key' must be a string"),
    (_set("timestamp", "2026-01-01 00:00:00"), "payload 'timestamp' must be RFC 3339 UTC"),
    (_set("timestamp", "2026-01-01T00:00:00+01:00"), "payload 'timestamp' must be RFC 3339"),
    (_set("timestamp", "2026-13-01T00:00:00Z"), "payload 'timestamp' is not a date"),
    (_set("extra", 1), "payload has unknown key 'extra'"),
    (_drop("report_data"), "payload lacks 'report_data'"),
    (_set("runtime", "cpython"), "payload 'runtime' must be a JSON object"),
    (_set_nested("runtime", "version", 3), "runtime 'version' must be a string"),
    (_set_nested("covers", "package_files", -1), "covers 'package_files' must be a non-neg"),
    (_set_nested("covers", "package_files", True), "covers 'package_files' must be a non-neg"),
    (_set_nested("covers", "interpreter", None), "covers 'interpreter' must be a string"),
]


@pytest.mark.parametrize(("change", "reason"), PAYLOAD_CASES)
def test_payload_deviations(envelope: dict, change, reason: str) -> None:
    with pytest.raises(MalformedEvidence, match=reason):
        parse_simulated(_with_part(envelope, "payload", change))
