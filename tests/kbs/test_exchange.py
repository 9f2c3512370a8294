"""The whole RCAR exchange against the real broker: auth, attest, resource as JWE."""

from __future__ import annotations

import base64
import json
import os

import httpx
from jwcrypto.jwe import JWE
from jwcrypto.jwk import JWK
from kbs_helpers import session_for, sim_policy, unique

from workbench.attestation.appraise.ear import submod
from workbench.attestation.tee.binding import report_data_for
from workbench.protocol import PROTOCOL_VERSION


def test_full_exchange_releases_the_key_as_jwe(broker, provider):
    key = os.urandom(32)
    path = unique("cohort")
    broker.add_resource(path, key, sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest([path])
        claims = session.verified_claims()
        assert submod(claims)["ear.status"] == "warning"  # simulation is allowed, with caveat
        assert claims["workbench.resources"][path]["status"] == "warning"
        assert claims["tee-pubkey"] == session.tee_pubkey
        assert session.get_resource(path) == key


def test_response_is_trustee_flattened_jwe_with_everything_protected(broker, provider):
    path = unique("jwe")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest()
        response = session._http.get(f"/kbs/v0/resource/{path}")
    body = response.json()
    assert set(body) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
    header = json.loads(base64.urlsafe_b64decode(body["protected"] + "=="))
    assert header["alg"] == "ECDH-ES+A256KW" and header["enc"] == "A256GCM"
    assert header["epk"]["kty"] == "EC"


def test_rsa_oaep_256_tee_key_is_supported(broker, provider):
    """Trustee clients may send an RSA key; the JWE then uses RSA-OAEP-256."""
    key = os.urandom(32)
    path = unique("rsa")
    broker.add_resource(path, key, sim_policy(provider))
    rsa = JWK.generate(kty="RSA", size=2048)
    public = {**rsa.export_public(as_dict=True), "alg": "RSA-OAEP-256"}
    with httpx.Client(base_url=broker.url) as http:
        nonce = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION, "tee": "simulated",
                                                "extra-params": ""}).json()["nonce"]
        evidence = provider.evidence(report_data_for(nonce, public))
        attested = http.post("/kbs/v0/attest", json={
            "runtime-data": {"nonce": nonce, "tee-pubkey": public},
            "tee-evidence": {"evidence": base64.b64encode(evidence).decode()}})
        assert attested.status_code == 200, attested.text
        released = http.get(f"/kbs/v0/resource/{path}")
    assert released.status_code == 200, released.text
    token = JWE()
    token.deserialize(json.dumps(released.json()), key=rsa)
    assert token.payload == key
    assert token.jose_header["alg"] == "RSA-OAEP-256"


def test_auth_sets_a_session_cookie_and_returns_a_nonce(broker):
    response = httpx.post(f"{broker.url}/kbs/v0/auth",
                          json={"version": PROTOCOL_VERSION, "tee": "simulated",
                                "extra-params": ""})
    assert response.status_code == 200
    challenge = response.json()
    assert len(base64.b64decode(challenge["nonce"])) == 32
    assert challenge["extra-params"] == ""
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("kbs-session-id=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_a_session_fetches_several_resources_after_one_attestation(broker, provider):
    keys = {unique("multi"): os.urandom(32) for _ in range(3)}
    for path, key in keys.items():
        broker.add_resource(path, key, sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest(list(keys))
        assert {path: session.get_resource(path) for path in keys} == keys


def test_keysets_are_released_byte_for_byte(broker, provider):
    keyset = json.dumps({"primaryKeyId": 1, "key": [{"keyId": 1}]}).encode()
    path = f"model-{os.urandom(3).hex()}/file-keyset/main"
    broker.add_resource(path, keyset, sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest([path])
        assert session.get_resource(path) == keyset


def test_jwks_publishes_the_token_key(broker, provider):
    with session_for(broker, provider) as session:
        session.attest()
        keys = session.broker_keys()
        assert len(keys) == 1 and keys[0].get("alg") == "ES256"
        claims = session.verified_claims(keys)
    assert claims["iss"].startswith("http://")
    # No resource named: the token reports the strict default policy.
    assert submod(claims)["ear.appraisal-policy-id"] == "kbs-default-attestation"
    assert submod(claims)["ear.status"] == "contraindicated"
