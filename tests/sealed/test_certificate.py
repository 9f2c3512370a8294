"""Session certificates and approval signatures: the analyst's key speaks for one session
with one kernel, in the JOSE/WebCrypto signature form, and nothing else passes."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from workbench.sealed.certificate import (
    CertificateInvalid,
    SessionCertificate,
    approval_message,
    canonical,
    certify,
    jwk_of,
    sign,
    thumbprint,
    verify,
)
from workbench.sealed.channel import public_point


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _made() -> tuple[SessionCertificate, ec.EllipticCurvePrivateKey, dict]:
    analyst, session, kernel = _key(), _key(), jwk_of(_key().public_key())
    return certify(analyst, session.public_key(), _key().public_key(), kernel), session, kernel


def test_a_certificate_verifies_for_its_session_and_kernel_only() -> None:
    certificate, session, kernel = _made()
    point = public_point(session.public_key()).hex()
    parsed = SessionCertificate.from_json(json.loads(json.dumps(certificate.to_json())))
    parsed.verify(session_key=point, kernel_key=thumbprint(kernel))
    assert parsed.digest() == certificate.digest()
    other_kernel = thumbprint(jwk_of(_key().public_key()))
    with pytest.raises(CertificateInvalid) as moved:
        parsed.verify(session_key=point, kernel_key=other_kernel)
    assert moved.value.kind == "other-kernel"
    with pytest.raises(CertificateInvalid) as other:
        parsed.verify(session_key=public_point(_key().public_key()).hex(),
                      kernel_key=thumbprint(kernel))
    assert other.value.kind == "other-session"


@pytest.mark.parametrize("member", ["session_key", "kernel_key", "issued_at", "analyst_key"])
def test_a_changed_member_breaks_the_signature(member: str) -> None:
    certificate, _session, _kernel = _made()
    document = certificate.to_json()
    document[member] = (jwk_of(_key().public_key()) if member == "analyst_key"
                        else public_point(_key().public_key()).hex() if member == "session_key"
                        else "x" + document[member][1:])
    with pytest.raises(CertificateInvalid) as refused:
        SessionCertificate.from_json(document).verify(
            session_key=document["session_key"], kernel_key=document["kernel_key"])
    assert refused.value.kind == "invalid"


@pytest.mark.parametrize("document", [None, {}, {"v": 2}, "certificate"])
def test_malformed_certificates_are_refused_by_name(document: object) -> None:
    with pytest.raises(CertificateInvalid) as refused:
        SessionCertificate.from_json(document)
    assert refused.value.kind == "malformed"


def test_signatures_are_raw_r_s_as_webcrypto_makes_them() -> None:
    key = _key()
    message = approval_message("r-1", "cohort/table-key/phi", "kid", "00" * 32)
    signature = sign(key, message)
    raw = base64.urlsafe_b64decode(signature + "==")
    assert len(raw) == 64 and len(signature) == 86
    # The same bytes as DER verify with the library directly: it is plain ECDSA P-256.
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))
    assert verify(key.public_key(), signature, message)
    assert not verify(key.public_key(), signature, message.replace(b"phi", b"xyz"))
    assert not verify(_key().public_key(), signature, message)
    assert not verify(key.public_key(), "not base64!", message)
    assert json.loads(canonical({"b": 1, "a": 2})) == {"a": 2, "b": 1}


# RFC 7638 section 3.1's example RSA key and the thumbprint the RFC gives for it.
_RFC7638_RSA = {
    "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
         "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
         "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08"
         "qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8a"
         "wapJzKnqDKgw",
}


def test_thumbprint_follows_rfc7638_for_rsa_keys_too() -> None:
    """A Trustee client's kernel key may be RSA: its release must not fail on the
    thumbprint the analyst rules compute for every session."""
    assert thumbprint(_RFC7638_RSA) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(("jwk", "reason"), [
    ({"kty": "oct", "k": "AAAA"}, "key type 'oct'"),
    ({"kty": "EC", "crv": "P-256", "x": "AAAA"}, "the EC key lacks y"),
])
def test_thumbprint_names_what_it_cannot_use(jwk: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        thumbprint(jwk)
