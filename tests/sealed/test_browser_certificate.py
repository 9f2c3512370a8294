"""Session certificates and signed approvals across implementations: the browser's
(extensions/src/certificate.ts) and workbench.sealed.certificate, held to one committed
vector, extensions/src/__tests__/certificateVector.json.

- ``python``: a certificate and an approval signature made here; the jest test
  certificate.spec.ts checks that the browser computes the same canonical bytes, thumbprint
  and token hash, and that WebCrypto verifies both signatures.
- ``browser``: a certificate and an approval signature made by certificate.ts in node (with
  a non-extractable analyst key, as in the tab); this test checks that the kernel's and the
  broker's parser and verifier accept them as they stand, and refuse them altered.
- ``canonical``: values and their canonical JSON, as json.dumps(sort_keys=True,
  separators=(",", ":")) writes them; both sides must write exactly these bytes.

Regenerate the Python part (and the canonical cases):

    .venv/bin/python tests/sealed/test_browser_certificate.py --write

and the browser part (in extensions/):

    WORKBENCH_WRITE_VECTOR=1 jlpm jest src/__tests__/certificate.spec.ts
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.sealed.certificate import (
    CertificateInvalid,
    SessionCertificate,
    approval_message,
    canonical,
    certify,
    jwk_of,
    sign,
    thumbprint,
    token_hash,
    verify,
)
from workbench.sealed.channel import public_point
from workbench.sealed.keys import key_from_point

VECTOR = Path(__file__).resolve().parents[2] / "extensions" / "src" / "__tests__" / \
    "certificateVector.json"
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# What a release request names; the token is a stand-in (only its hash is signed).
REQUEST = {"request_id": "5f0c7a52-6a8e-4c1e-9d1b-3f2a7c9e0b11",
           "resource": "oncology-cohort/table-key/phi",
           "token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrYmVuY2gifQ.c2lnbmF0dXJl"}
CANONICAL_VALUES: list[Any] = [
    {"b": {"z": 1, "a": [1, {"y": True, "x": None}]}, "a": "", "10": 0, "2": -3},
    {"text": "caf\u00e9 \u65e5\u672c \U0001f600", "ctl": "\u0001\n\t\r\b\f\u001f\u007f",
     "quote": "\"back\\slash\" </script>"},
    [],
    {"analyst_key": {"y": "Y", "x": "X", "kty": "EC", "crv": "P-256"}, "v": 1},
]


def _key(label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _load() -> dict[str, Any]:
    return json.loads(VECTOR.read_text(encoding="utf-8"))


def build_python() -> dict[str, Any]:
    """A certificate and approval signature made by workbench.sealed.certificate (fixed
    keys; ECDSA signatures are randomised, so the signatures change on every write)."""
    analyst, session, signing, kernel = (_key(f"workbench certificate vector {name}")
                                        for name in ("analyst", "session", "signing",
                                                     "kernel"))
    kernel_jwk = jwk_of(kernel.public_key())
    certificate = certify(analyst, session.public_key(), signing.public_key(), kernel_jwk,
                          now=datetime(2026, 12, 4, 18, 0, 0, tzinfo=UTC))
    approval = {**REQUEST, "kernel_key": thumbprint(kernel_jwk),
                "token_sha256": token_hash(REQUEST["token"])}
    message = approval_message(approval["request_id"], approval["resource"],
                               approval["kernel_key"], approval["token_sha256"])
    return {
        "kernel_jwk": kernel_jwk,
        "certificate": certificate.to_json(),
        "body": canonical(certificate.body()).decode(),
        "analyst_fingerprint": certificate.analyst_fingerprint,
        "approval": {**approval, "message": message.decode(),
                     "signature": sign(signing, message)},
    }


def build_canonical() -> list[dict[str, Any]]:
    return [{"value": value, "canonical": canonical(value).decode()}
            for value in CANONICAL_VALUES]


def _browser() -> dict[str, Any]:
    vector = _load()
    if "browser" not in vector:
        pytest.fail(f"{VECTOR.name} has no browser part: run the jest test with "
                    "WORKBENCH_WRITE_VECTOR=1 (see this module's docstring)")
    return vector["browser"]


def _certificate(part: dict[str, Any]) -> SessionCertificate:
    return SessionCertificate.from_json(copy.deepcopy(part["certificate"]))


def test_the_browser_certificate_verifies_as_the_kernel_and_broker_check_it() -> None:
    browser = _browser()
    certificate = _certificate(browser)
    kernel_key = thumbprint(browser["kernel_jwk"])
    certificate.verify(session_key=certificate.session_key, kernel_key=kernel_key)
    # The bytes the browser signed are Python's canonical JSON of the body, exactly.
    assert canonical(certificate.body()).decode() == browser["body"]
    assert certificate.analyst_fingerprint == browser["analyst_fingerprint"]
    assert certificate.to_json() == browser["certificate"]
    assert datetime.fromisoformat(certificate.issued_at).utcoffset() is not None
    assert certificate.issued_at == datetime.fromisoformat(certificate.issued_at) \
        .isoformat(timespec="seconds")
    # The points are the uncompressed P-256 points the channel and the signer use.
    assert len(bytes.fromhex(certificate.session_key)) == 65
    key_from_point(bytes.fromhex(certificate.session_key))


def test_the_browser_approval_signature_verifies_as_the_broker_checks_it() -> None:
    browser = _browser()
    certificate = _certificate(browser)
    approval = browser["approval"]
    assert approval["kernel_key"] == thumbprint(browser["kernel_jwk"]) == certificate.kernel_key
    assert approval["token_sha256"] == token_hash(approval["token"])
    message = approval_message(approval["request_id"], approval["resource"],
                               approval["kernel_key"], approval["token_sha256"])
    assert message.decode() == approval["message"]
    signing = key_from_point(bytes.fromhex(certificate.signing_key))
    assert verify(signing, approval["signature"], message)


def test_altered_browser_certificates_and_approvals_are_refused() -> None:
    """The checks above can fail: each alteration is refused with its kind."""
    browser = _browser()
    kernel_key = thumbprint(browser["kernel_jwk"])
    base = browser["certificate"]

    def refused(**changes: Any) -> str:
        altered = SessionCertificate.from_json({**copy.deepcopy(base), **changes})
        with pytest.raises(CertificateInvalid) as err:
            altered.verify(session_key=altered.session_key, kernel_key=kernel_key)
        return err.value.kind

    assert refused(issued_at="2026-12-04T18:00:01+00:00") == "invalid"
    assert refused(kernel_key="A" * 43) == "invalid"  # signed over, so the signature breaks
    other = jwk_of(_key("another analyst").public_key())
    assert refused(analyst_key=other) == "invalid"
    flipped = ("B" if base["signature"][5] == "A" else "A")
    assert refused(signature=base["signature"][:5] + flipped + base["signature"][6:]) \
        == "invalid"
    with pytest.raises(CertificateInvalid) as err:
        _certificate(browser).verify(session_key=base["session_key"], kernel_key="K" * 43)
    assert err.value.kind == "other-kernel"
    with pytest.raises(CertificateInvalid) as err:
        SessionCertificate.from_json({**base, "extra": 1})
    assert err.value.kind == "malformed"

    approval = browser["approval"]
    signing = key_from_point(bytes.fromhex(base["signing_key"]))
    for other_request in ({"request_id": "another"}, {"resource": "cohort/table-key/clinical"},
                          {"token_sha256": token_hash("another token")}):
        fields = {**approval, **other_request}
        message = approval_message(fields["request_id"], fields["resource"],
                                   fields["kernel_key"], fields["token_sha256"])
        assert not verify(signing, approval["signature"], message)


def test_the_python_part_is_what_workbench_sealed_certificate_makes() -> None:
    vector = _load()
    python = vector["python"]
    certificate = _certificate(python)
    certificate.verify(session_key=public_point(
        _key("workbench certificate vector session").public_key()).hex(),
        kernel_key=thumbprint(python["kernel_jwk"]))
    fresh = build_python()
    # Everything but the (randomised) signatures is reproduced.
    assert {k: v for k, v in fresh["certificate"].items() if k != "signature"} == \
        {k: v for k, v in python["certificate"].items() if k != "signature"}
    assert fresh["body"] == python["body"]
    assert {k: v for k, v in fresh["approval"].items() if k != "signature"} == \
        {k: v for k, v in python["approval"].items() if k != "signature"}
    signing = key_from_point(bytes.fromhex(certificate.signing_key))
    assert verify(signing, python["approval"]["signature"],
                  python["approval"]["message"].encode())
    assert vector["canonical"] == build_canonical()


def _write() -> None:
    vector = _load() if VECTOR.exists() else {}
    vector.update({
        "about": "made by tests/sealed/test_browser_certificate.py (python, canonical) and "
                 "extensions/src/__tests__/certificate.spec.ts (browser); each side checks "
                 "the other's",
        "python": build_python(),
        "canonical": build_canonical(),
    })
    VECTOR.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n",
                      encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write()
        print(f"wrote {VECTOR}")
    else:
        sys.exit(f"usage: {sys.argv[0]} --write")
