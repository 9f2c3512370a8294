"""A sealed session's keys must be P-256 keys: refused when the session attests (the field
named, the refusal audited, the nonce spent), never an internal error; and a session an
older broker stored with such keys is refused at release with its reason, not a 500.
Against real broker processes."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from kbs_helpers import provider_for, running_broker, sim_policy, unique

from workbench.attestation.tee.binding import report_data_for
from workbench.protocol.rcar import PROTOCOL_VERSION
from workbench.sealed.certificate import SessionCertificate, certify
from workbench.sealed.channel import public_point
from workbench.sealed.keys import sealed_fingerprint


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _kernel_jwk(curve: str = "P-256") -> dict[str, Any]:
    return {**JWK.generate(kty="EC", crv=curve).export_public(as_dict=True),
            "alg": "ECDH-ES+A256KW"}


def _certificate(session_point: bytes, kernel: dict[str, Any],
                 analyst: ec.EllipticCurvePrivateKey | None = None,
                 signing: ec.EllipticCurvePrivateKey | None = None) -> dict[str, Any]:
    return certify(analyst or _key(),
                   ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), session_point),
                   (signing or _key()).public_key(), kernel).to_json()


class Attempt:
    """One session opened by hand: auth, then attest with chosen runtime-data."""

    def __init__(self, broker, provider) -> None:
        self.http = httpx.Client(base_url=broker.url)
        self.nonce = self.http.post("/kbs/v0/auth", json={
            "version": PROTOCOL_VERSION, "tee": "simulated"}).json()["nonce"]
        self.provider = provider

    def body(self, kernel: dict[str, Any], session_key: str,
             certificate: dict[str, Any] | None) -> dict[str, Any]:
        digest = b""
        if certificate is not None:
            digest = SessionCertificate.from_json(certificate).digest()
        evidence = self.provider.evidence(report_data_for(
            self.nonce, kernel, b"", bytes.fromhex(session_key), digest))
        runtime = {"nonce": self.nonce, "tee-pubkey": kernel, "session-key": session_key}
        if certificate is not None:
            runtime["session-certificate"] = certificate
        return {"runtime-data": runtime,
                "tee-evidence": {"evidence": base64.b64encode(evidence).decode()}}

    def attest(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post("/kbs/v0/attest", json=body)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()


def _off_curve_point() -> str:
    return "04" + "01" * 32 + "02" * 32


def _p384_kernel() -> tuple[dict[str, Any], str, None]:
    return _kernel_jwk("P-384"), public_point(_key().public_key()).hex(), None


def _rsa_kernel() -> tuple[dict[str, Any], str, None]:
    rsa = {**JWK.generate(kty="RSA", size=2048).export_public(as_dict=True),
           "alg": "RSA-OAEP-256"}
    return rsa, public_point(_key().public_key()).hex(), None


def _off_curve_session_key() -> tuple[dict[str, Any], str, None]:
    return _kernel_jwk(), _off_curve_point(), None


def _certificate_with(change: Callable[[dict[str, Any]], None]
                      ) -> Callable[[], tuple[dict[str, Any], str, dict[str, Any]]]:
    def make() -> tuple[dict[str, Any], str, dict[str, Any]]:
        kernel, point = _kernel_jwk(), public_point(_key().public_key())
        certificate = _certificate(point, kernel)
        change(certificate)
        return kernel, point.hex(), certificate
    return make


CASES = {
    "P-384 kernel key": (_p384_kernel, "InvalidTeePubkey",
                         "runtime-data.tee-pubkey: a sealed session's kernel key must be an "
                         "EC P-256 JWK, since the session fingerprint and sealed approvals "
                         "are computed over P-256; this one is EC P-384"),
    "RSA kernel key": (_rsa_kernel, "InvalidTeePubkey", "; this one is RSA"),
    "session key off the curve": (_off_curve_session_key, "MalformedRequest",
                                  "runtime-data.session-key: not a P-256 public key"),
    "signing key not a point": (
        _certificate_with(lambda c: c.update(signing_key="zz")), "MalformedRequest",
        "runtime-data.session-certificate.signing_key: not a P-256 public key in hex"),
    "signing key off the curve": (
        _certificate_with(lambda c: c.update(signing_key=_off_curve_point())),
        "MalformedRequest", "runtime-data.session-certificate.signing_key: not a P-256"),
    "analyst key without kty": (
        _certificate_with(lambda c: c["analyst_key"].pop("kty")), "MalformedRequest",
        "runtime-data.session-certificate.analyst_key: not an EC P-256 JWK"),
    "analyst key on P-384": (
        _certificate_with(lambda c: c.update(analyst_key={
            k: v for k, v in _kernel_jwk("P-384").items() if k in ("kty", "crv", "x", "y")})),
        "MalformedRequest", "runtime-data.session-certificate.analyst_key: not an EC P-256"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_sealed_keys_are_refused_at_attest(broker, provider, case: str) -> None:
    make, problem, detail = CASES[case]
    with Attempt(broker, provider) as attempt:
        body = attempt.body(*make())
        first, again = attempt.attest(body), attempt.attest(body)
    assert first.status_code == 400, first.text
    assert first.json()["type"].endswith(f":{problem}")
    assert detail in first.json()["detail"]
    # Refused in the step that spends the nonce: the same request again is a replay.
    assert again.status_code == 401 and again.json()["type"].endswith(":NonceSpent")
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": "attest", "limit": 1000}).json()
    assert any(r["payload"].get("reason") == first.json()["detail"]
               and r["payload"]["verdict"] == "rejected" for r in records)


def test_a_sealed_p256_session_still_attests(broker, provider) -> None:
    kernel, point = _kernel_jwk(), public_point(_key().public_key())
    with Attempt(broker, provider) as attempt:
        response = attempt.attest(attempt.body(kernel, point.hex(),
                                               _certificate(point, kernel)))
    assert response.status_code == 200, response.text


# -- sessions an older broker stored (it accepted these keys at attest) --------------------

def _doctor(kind: str, row: dict[str, Any], provider) -> None:
    """What an older broker could have stored for the session, written into its row with
    evidence that binds it (as that broker would have checked)."""
    kernel = json.loads(row["tee_pubkey"])
    certificate = json.loads(row["session_certificate"])
    if kind == "P-384 kernel key":
        kernel = _kernel_jwk("P-384")
    elif kind == "signing key not a point":
        certificate["signing_key"] = "zz"
    else:
        certificate["analyst_key"].pop("kty")
    digest = SessionCertificate.from_json(certificate).digest()
    evidence = provider.evidence(report_data_for(
        row["nonce"], kernel, b"", bytes.fromhex(row["session_key"]), digest))
    row.update(tee_pubkey=json.dumps(kernel), session_certificate=json.dumps(certificate),
               evidence=base64.b64encode(evidence).decode())


@pytest.mark.parametrize(("kind", "reason"), [
    ("P-384 kernel key", "the session's keys (tee-pubkey, session-key) are not both P-256, "
                         "so no sealed approval can name its session"),
    ("signing key not a point", "releases of this resource are restricted to registered "
                                "analysts: the session certificate's keys are unusable"),
    ("analyst key without kty", "releases of this resource are restricted to registered "
                                "analysts: the session certificate's keys are unusable"),
])
def test_a_stored_session_with_unusable_keys_is_refused_at_release(
        tmp_path, fixed_package, kind: str, reason: str) -> None:
    with running_broker(tmp_path) as broker:
        provider = provider_for(broker, fixed_package)
        path = unique("stored-sealed")
        broker.add_resource(path, os.urandom(32),
                            sim_policy(provider, sealed_session="required",
                                       analyst_groups=["oncology"]))
        attempt = Attempt(broker, provider)
        kernel, session = _kernel_jwk(), _key()
        point = public_point(session.public_key())
        body = attempt.body(kernel, point.hex(), _certificate(point, kernel))
        assert attempt.attest(body).status_code == 200
        cookie = attempt.http.cookies["kbs-session-id"]
        attempt.http.close()
        broker.stop()  # a restarted broker reads the session from its row, as a replica does
        with sqlite3.connect(broker.db) as db:
            db.row_factory = sqlite3.Row
            row = dict(db.execute("SELECT * FROM sessions WHERE id = ?", (cookie,)).fetchone())
            _doctor(kind, row, provider)
            db.execute("UPDATE sessions SET tee_pubkey = ?, session_certificate = ?, "
                       "evidence = ? WHERE id = ?", (row["tee_pubkey"],
                                                     row["session_certificate"],
                                                     row["evidence"], cookie))
        db.close()
        broker.start()
        with httpx.Client(base_url=broker.url, cookies={"kbs-session-id": cookie}) as http:
            response = http.get(f"/kbs/v0/resource/{path}", params={
                "analyst-approval": "sealed",
                "analyst-approval-by": sealed_fingerprint(point, kernel),
                "analyst-approval-signature": "A" * 86,
                "analyst-approval-request": "req1"})
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith(":PolicyDeny")
        assert reason in response.json()["detail"]
        with broker.admin() as admin:
            records = admin.get("/audit", params={"kind": "refusal", "limit": 1000}).json()
        assert [r["payload"]["reason"] for r in records
                if r["payload"].get("resource") == path] == [response.json()["detail"]]
