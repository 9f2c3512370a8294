"""The report-data binding: one documented encoding, checked against an independent rebuild."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from jwcrypto.jwk import JWK

from workbench.attestation.tee.binding import (
    BindingError,
    binding_matches,
    jwk_thumbprint,
    report_data_for,
)


@pytest.fixture(scope="module")
def key() -> JWK:
    return JWK.generate(kty="EC", crv="P-256")


@pytest.fixture(scope="module")
def public(key: JWK) -> dict:
    return key.export_public(as_dict=True)


def _rfc7638_ec(jwk: dict) -> bytes:
    # RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).digest()


def _spec(nonce: str, thumbprint: bytes, transport: bytes) -> bytes:
    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    return hashlib.sha512(
        b"workbench-report-data-v1\x00" + lp(nonce.encode()) + lp(thumbprint) + lp(transport)
    ).digest()


def test_thumbprint_is_rfc7638(public: dict) -> None:
    assert jwk_thumbprint(public) == _rfc7638_ec(public)


def test_report_data_follows_the_documented_encoding(public: dict) -> None:
    value = report_data_for("n-123", public, b"transport-key")
    assert len(value) == 64
    assert value == _spec("n-123", _rfc7638_ec(public), b"transport-key")


def test_every_input_changes_the_binding(public: dict) -> None:
    other = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    base = report_data_for("nonce", public, b"t")
    assert report_data_for("nonce2", public, b"t") != base
    assert report_data_for("nonce", other, b"t") != base
    assert report_data_for("nonce", public, b"") != base


def test_length_prefixes_keep_boundaries(public: dict) -> None:
    # Without prefixes "ab" + "" and "a" + "b" would hash the same bytes.
    assert report_data_for("ab", public, b"") != report_data_for("a", public, b"b")


def test_private_members_and_kid_do_not_change_binding(key: JWK, public: dict) -> None:
    private = key.export_private(as_dict=True)
    labelled = {**public, "kid": "session-1", "use": "enc"}
    base = report_data_for("nonce", public)
    assert report_data_for("nonce", private) == base
    assert report_data_for("nonce", labelled) == base


def test_rsa_and_okp_keys_bind_too() -> None:
    rsa = JWK.generate(kty="RSA", size=2048).export_public(as_dict=True)
    okp = JWK.generate(kty="OKP", crv="X25519").export_public(as_dict=True)
    assert report_data_for("n", rsa) != report_data_for("n", okp)


def test_binding_matches_is_exact(public: dict) -> None:
    value = report_data_for("n", public)
    assert binding_matches(value, value)
    assert not binding_matches(value, bytes(64))


@pytest.mark.parametrize(
    ("nonce", "jwk", "transport", "reason"),
    [
        ("", {"kty": "EC"}, b"", "nonce must be a non-empty string"),
        (b"bytes", {"kty": "EC"}, b"", "nonce must be a non-empty string"),
        ("x" * 1025, {"kty": "EC"}, b"", "nonce is 1025 bytes; at most 1024"),
        ("n", "not-a-dict", b"", "tee public key must be a JWK object, not str"),
        ("n", {"kty": "EC", "crv": "P-256"}, b"", "tee public key is not a valid JWK"),
        ("n", {"kty": "nope"}, b"", "tee public key is not a valid JWK"),
    ],
)
def test_refusals_say_why(nonce, jwk, transport, reason) -> None:
    with pytest.raises(BindingError, match=reason):
        report_data_for(nonce, jwk, transport)


def test_transport_key_must_be_bytes(public: dict) -> None:
    with pytest.raises(BindingError, match="transport key must be bytes"):
        report_data_for("n", public, "text")  # type: ignore[arg-type]


def test_thumbprint_decodes_to_32_bytes(public: dict) -> None:
    encoded = JWK(**public).thumbprint()
    assert jwk_thumbprint(public) == base64.urlsafe_b64decode(encoded + "=")
