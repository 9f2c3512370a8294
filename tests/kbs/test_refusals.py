"""Every way the broker refuses, each with the reason it gives (and the audit record)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from kbs_helpers import provider_for, running_broker, session_for, sim_policy, unique

from workbench.attestation.tee.binding import report_data_for
from workbench.brokerclient import BrokerError
from workbench.protocol import PROTOCOL_VERSION

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def problem(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["type"].rsplit(":", 1)[-1], body["detail"]


def auth(http: httpx.Client, tee: str = "simulated", **extra) -> str:
    response = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION, "tee": tee,
                                               "extra-params": extra or ""})
    assert response.status_code == 200, response.text
    return response.json()["nonce"]


def ec_key() -> dict:
    from jwcrypto.jwk import JWK

    public = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    return {**public, "alg": "ECDH-ES+A256KW"}


def rsa_1024() -> dict:
    from jwcrypto.jwk import JWK

    return JWK.generate(kty="RSA", size=1024).export_public(as_dict=True)


def attest_body(nonce: str, pubkey: dict, evidence: bytes, **tee_evidence) -> dict:
    return {"runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
            "tee-evidence": {"evidence": base64.b64encode(evidence).decode(), **tee_evidence}}


@pytest.fixture
def http(broker):
    with httpx.Client(base_url=broker.url, timeout=30) as client:
        yield client


def last_audit(broker, kind: str) -> dict:
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": kind, "limit": 1000}).json()
    return records[-1]["payload"]


# -- auth ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "kind", "reason"), [
    ({"version": "0.1.0", "tee": "simulated"}, "ProtocolVersionMismatch",
     "protocol version '0.1.0' is not supported; this broker speaks 0.4.0"),
    ({"version": PROTOCOL_VERSION, "tee": "sev"}, "UnsupportedTee",
     "tee 'sev' is a TEE this broker cannot verify"),
    ({"version": PROTOCOL_VERSION, "tee": "quantum"}, "UnsupportedTee",
     "tee 'quantum' is an unknown TEE type"),
    ({"tee": "simulated"}, "MalformedRequest", "version: required field is missing"),
    ({"version": PROTOCOL_VERSION, "tee": "simulated", "extra-params": {"resources": "x"}},
     "MalformedRequest", "extra-params.resources must be a list"),
    ({"version": PROTOCOL_VERSION, "tee": "simulated",
      "extra-params": {"resources": ["a/b/../c"]}}, "InvalidResourcePath",
     "must have the form repository/type/tag"),
])
def test_auth_refusals(http, body, kind, reason):
    status, got_kind, detail = problem(http.post("/kbs/v0/auth", json=body))
    assert (status, got_kind) == (400, kind)
    assert reason in detail


def test_malformed_json_names_the_problem(http):
    response = http.post("/kbs/v0/auth", content=b'{"version": ', headers={
        "content-type": "application/json"})
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "MalformedRequest")
    assert detail.startswith("malformed JSON")


def test_oversized_body_is_refused_before_parsing(http, broker):
    # Not JSON at all: a 413 proves the body was never parsed.
    response = http.post("/kbs/v0/attest", content=b"x" * (300 * 1024))
    status, kind, detail = problem(response)
    assert (status, kind) == (413, "BodyTooLarge")
    assert "larger than 262144 bytes" in detail


def test_oversized_chunked_body_is_refused(http):
    def chunks():
        for _ in range(40):
            yield b"y" * 8192

    status, kind, _ = problem(http.post("/kbs/v0/auth", content=chunks()))
    assert (status, kind) == (413, "BodyTooLarge")


def test_unknown_route_and_method_are_json_errors(http):
    assert problem(http.get("/kbs/v0/nothing"))[:2] == (404, "NotFound")
    assert problem(http.get("/kbs/v0/auth"))[:2] == (405, "MethodNotAllowed")


# -- attest -------------------------------------------------------------------------------

def test_attest_without_a_session_cookie(http, provider):
    status, kind, detail = problem(http.post("/kbs/v0/attest", json=attest_body(
        "n", ec_key(), b"{}")))
    assert (status, kind) == (401, "MissingSession")
    assert "start with POST /kbs/v0/auth" in detail


def test_attest_with_an_unknown_session(broker):
    with httpx.Client(base_url=broker.url, cookies={"kbs-session-id": "f" * 32}) as client:
        status, kind, _ = problem(client.post("/kbs/v0/attest",
                                              json=attest_body("n", ec_key(), b"{}")))
    assert (status, kind) == (401, "UnknownSession")


def test_nonce_of_another_challenge_is_refused(http, provider):
    auth(http)
    pubkey = ec_key()
    other = "b3RoZXIgbm9uY2U="
    response = http.post("/kbs/v0/attest", json=attest_body(
        other, pubkey, provider.evidence(report_data_for(other, pubkey))))
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "NonceMismatch")
    assert "not the nonce of this session's challenge" in detail


def test_replaying_an_attest_request_on_its_session_is_refused(http, provider, broker):
    nonce = auth(http)
    pubkey = ec_key()
    body = attest_body(nonce, pubkey, provider.evidence(report_data_for(nonce, pubkey)))
    assert http.post("/kbs/v0/attest", json=body).status_code == 200
    status, kind, detail = problem(http.post("/kbs/v0/attest", json=body))
    assert (status, kind) == (401, "NonceSpent")
    assert "already used" in detail
    assert last_audit(broker, "attest")["problem"] == "NonceSpent"


def test_replaying_an_attest_request_into_a_new_session_is_refused(broker, provider):
    with httpx.Client(base_url=broker.url) as first:
        nonce = auth(first)
        pubkey = ec_key()
        body = attest_body(nonce, pubkey, provider.evidence(report_data_for(nonce, pubkey)))
        assert first.post("/kbs/v0/attest", json=body).status_code == 200
    with httpx.Client(base_url=broker.url) as attacker:
        auth(attacker)
        status, kind, _ = problem(attacker.post("/kbs/v0/attest", json=body))
    assert (status, kind) == (401, "NonceMismatch")


def test_a_failed_attest_spends_the_nonce(http, provider):
    nonce = auth(http)
    pubkey = ec_key()
    bad = attest_body(nonce, pubkey, provider.evidence(report_data_for(nonce, ec_key())))
    assert problem(http.post("/kbs/v0/attest", json=bad))[1] == "BindingMismatch"
    good = attest_body(nonce, pubkey, provider.evidence(report_data_for(nonce, pubkey)))
    assert problem(http.post("/kbs/v0/attest", json=good))[1] == "NonceSpent"


def test_evidence_bound_to_another_key_is_refused(http, provider, broker):
    nonce = auth(http)
    presented, bound = ec_key(), ec_key()
    response = http.post("/kbs/v0/attest", json=attest_body(
        nonce, presented, provider.evidence(report_data_for(nonce, bound))))
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "BindingMismatch")
    assert "does not bind this session" in detail
    record = last_audit(broker, "attest")
    assert record["verdict"] == "rejected" and record["problem"] == "BindingMismatch"


def test_evidence_from_an_untrusted_platform_key_is_refused(http, broker, fixed_package,
                                                            tmp_path):
    stranger = provider_for(broker, fixed_package, home=tmp_path / "other-machine")
    nonce = auth(http)
    pubkey = ec_key()
    response = http.post("/kbs/v0/attest", json=attest_body(
        nonce, pubkey, stranger.evidence(report_data_for(nonce, pubkey))))
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "EvidenceRejected")
    assert "platform-key" in detail


@pytest.mark.parametrize(("tee_evidence", "reason"), [
    ({"evidence": "***"}, "tee-evidence evidence is not valid base64"),
    ({"quote_missing": "AAAA"}, "tee-evidence has no 'evidence' member"),
    ({"evidence": base64.b64encode(b"not evidence").decode()}, "is not simulated evidence"),
    ({"evidence": "AAAA", "certs": "x"}, "certs must be a list"),
    (17, "tee-evidence must be"),
])
def test_malformed_evidence(http, tee_evidence, reason):
    nonce = auth(http)
    response = http.post("/kbs/v0/attest", json={
        "runtime-data": {"nonce": nonce, "tee-pubkey": ec_key()}, "tee-evidence": tee_evidence})
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "MalformedEvidence")
    assert reason in detail


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda k: {**k, "alg": "RSA1_5"}, "kty/alg EC/RSA1_5 is not supported"),
    (lambda k: {**k, "crv": "P-192"}, "curve P-192 is not one of"),
    (lambda k: {**k, "x": "AAAA"}, "not a valid EC JWK"),
    (lambda k: {**rsa_1024(), "alg": "RSA-OAEP-256"}, "RSA modulus is shorter than 2048 bits"),
    (lambda k: {**k, "d": k["x"]}, "contains private key members"),
    (lambda k: {"kty": "oct", "k": "AAAA", "alg": "A256KW"}, "kty/alg oct/A256KW"),
])
def test_unusable_tee_pubkeys_are_refused(http, provider, mutate, reason):
    nonce = auth(http)
    pubkey = mutate(ec_key())
    response = http.post("/kbs/v0/attest", json={
        "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey},
        "tee-evidence": {"evidence": "AAAA"}})
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "InvalidTeePubkey")
    assert reason in detail


def test_simulated_evidence_on_an_snp_session_is_refused(http, provider):
    nonce = auth(http, tee="snp")
    pubkey = ec_key()
    response = http.post("/kbs/v0/attest", json=attest_body(
        nonce, pubkey, provider.evidence(report_data_for(nonce, pubkey))))
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "MalformedEvidence")
    assert "is not snp evidence" in detail


@pytest.fixture
def snp_vectors():
    folder = VECTORS / "sev-snp"
    if not folder.is_dir():
        pytest.skip(f"shared evidence vectors not present at {folder}")
    return folder


def test_real_snp_evidence_not_bound_to_the_nonce_is_refused(http, snp_vectors):
    """Genuine AMD-signed evidence verifies, and is still refused: it binds another nonce."""
    nonce = auth(http, tee="snp")
    report = (snp_vectors / "go-sev-guest-attestation.bin").read_bytes()
    vcek = (snp_vectors / "go-sev-guest-vcek.der").read_bytes()
    response = http.post("/kbs/v0/attest", json=attest_body(
        nonce, ec_key(), report, certs=[base64.b64encode(vcek).decode()]))
    status, kind, _ = problem(response)
    assert (status, kind) == (401, "BindingMismatch")


@pytest.mark.parametrize(("tee", "vector"), [
    ("sgx", "sgx/trustee-occlum-quote-v3.dat"),
    ("tdx", "tdx/trustee-quote-v4.dat"),
])
def test_real_dcap_quotes_not_bound_to_the_nonce_are_refused(http, tee, vector):
    quote = VECTORS / vector
    if not quote.exists():
        pytest.skip(f"shared evidence vectors not present at {quote}")
    nonce = auth(http, tee=tee)
    status, kind, _ = problem(http.post("/kbs/v0/attest", json=attest_body(
        nonce, ec_key(), quote.read_bytes())))
    assert (status, kind) == (401, "BindingMismatch")


def test_sgx_quote_on_a_tdx_session_is_refused(http):
    quote = VECTORS / "sgx" / "trustee-occlum-quote-v3.dat"
    if not quote.exists():
        pytest.skip(f"shared evidence vectors not present at {quote}")
    nonce = auth(http, tee="tdx")
    status, kind, detail = problem(http.post("/kbs/v0/attest", json=attest_body(
        nonce, ec_key(), quote.read_bytes())))
    assert (status, kind) == (400, "MalformedEvidence")
    assert "evidence is SGX evidence, not tdx" in detail


def test_real_snp_evidence_without_its_vcek_is_refused(http, snp_vectors):
    nonce = auth(http, tee="snp")
    report = (snp_vectors / "go-sev-guest-attestation.bin").read_bytes()
    status, kind, detail = problem(http.post("/kbs/v0/attest",
                                             json=attest_body(nonce, ec_key(), report)))
    assert (status, kind) == (401, "EvidenceRejected")
    assert "endorsement-key" in detail


# -- resource -----------------------------------------------------------------------------

def test_resource_without_a_session(http, broker, provider):
    status, kind, _ = problem(http.get("/kbs/v0/resource/a/table-key/phi"))
    assert (status, kind) == (401, "MissingSession")
    assert last_audit(broker, "refusal")["problem"] == "MissingSession"


def test_resource_before_attesting(http):
    auth(http)
    status, kind, detail = problem(http.get("/kbs/v0/resource/a/table-key/phi"))
    assert (status, kind) == (401, "NotAttested")
    assert "has not attested" in detail


def test_resource_after_a_failed_attestation(http, provider):
    nonce = auth(http)
    pubkey = ec_key()
    http.post("/kbs/v0/attest", json=attest_body(
        nonce, pubkey, provider.evidence(report_data_for(nonce, ec_key()))))
    status, kind, detail = problem(http.get("/kbs/v0/resource/a/table-key/phi"))
    assert (status, kind) == (401, "NotAttested")
    assert "attestation failed" in detail


def test_unknown_resource(broker, provider):
    with session_for(broker, provider) as session:
        session.attest()
        with pytest.raises(BrokerError) as caught:
            session.get_resource("nobody/table-key/phi")
    assert (caught.value.status, caught.value.kind) == (404, "ResourceNotFound")
    assert "resource nobody/table-key/phi not found" in str(caught.value)


def test_invalid_resource_path(broker, provider):
    with session_for(broker, provider) as session:
        session.attest()
        response = session._http.get("/kbs/v0/resource/-bad/table-key/phi")
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "InvalidResourcePath")
    assert "repository '-bad'" in detail


def test_policy_without_simulation_refuses_and_lists_the_rules(broker, provider):
    path = unique("hw-only")
    broker.add_resource(path, os.urandom(32), sim_policy(provider, allow_simulation=False))
    with session_for(broker, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    error = caught.value
    assert (error.status, error.kind) == (403, "PolicyDeny")
    assert [r["name"] for r in error.failed_rules] == ["simulation"]
    assert "the policy does not set allow_simulation" in error.failed_rules[0]["reason"]
    record = last_audit(broker, "refusal")
    assert record["failed_rules"] == ["simulation"] and record["resource"] == path


def test_wrong_measurement_is_refused_with_the_rule(broker, provider):
    path = unique("pinned")
    policy = sim_policy(provider)
    policy["reference_values"]["simulated"]["measurement"] = "ab" * 48
    broker.add_resource(path, os.urandom(32), policy)
    with session_for(broker, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert [r["name"] for r in caught.value.failed_rules] == ["simulated.measurement"]
    assert "is not a reference value of the policy" in str(caught.value)


def test_revoked_resource_is_refused(broker, provider):
    path = unique("revoked")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with broker.admin() as admin:
        assert admin.post(f"/resources/{path}/revoke").status_code == 200
    with session_for(broker, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert (caught.value.status, caught.value.kind) == (403, "ResourceRevoked")
    assert f"resource {path} was revoked" in str(caught.value)


def test_denied_release_is_refused_with_the_owners_reason(broker, provider):
    path = unique("ask-me")
    broker.add_resource(path, os.urandom(32), sim_policy(provider), require_approval=True)
    with session_for(broker, provider) as session:
        session.attest([path])
        pending = session.fetch(path)
        with broker.admin() as admin:
            denied = admin.post(f"/approvals/{pending.request_id}/deny",
                                json={"reason": "not for this study"})
        assert denied.json()["state"] == "denied"
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert (caught.value.status, caught.value.kind) == (403, "ApprovalDenied")
    assert "denied the release" in str(caught.value)
    assert "not for this study" in str(caught.value)
    assert caught.value.request_id == pending.request_id


def test_undecided_release_times_out(broker, provider):
    path = unique("slow-owner")
    broker.add_resource(path, os.urandom(32), sim_policy(provider), require_approval=True,
                        approval_timeout_s=1)
    with session_for(broker, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path, wait_s=30)
    assert (caught.value.status, caught.value.kind) == (403, "ApprovalExpired")
    assert "timed out after 1 s without a decision" in str(caught.value)
    assert last_audit(broker, "expiry")["resource"] == path


def test_expired_nonce_and_expired_session(tmp_path, fixed_package):
    """The server keeps time itself: the expired cookie is replayed by hand."""
    with running_broker(tmp_path, nonce_ttl_s=1, session_ttl_s=2) as short:
        provider = provider_for(short, fixed_package)
        path = unique("short")
        short.add_resource(path, os.urandom(32), sim_policy(provider))
        with httpx.Client(base_url=short.url) as http:
            nonce = auth(http)
            cookie = {"Cookie": f"kbs-session-id={http.cookies['kbs-session-id']}"}
            time.sleep(1.2)
            pubkey = ec_key()
            status, kind, detail = problem(http.post("/kbs/v0/attest", headers=cookie,
                                                     json=attest_body(nonce, pubkey,
                                                     provider.evidence(
                                                         report_data_for(nonce, pubkey)))))
        assert (status, kind) == (401, "SessionExpired")
        assert "the challenge expired" in detail
        with session_for(short, provider) as session:
            session.attest([path])
            cookie = {"Cookie": f"kbs-session-id={session._http.cookies['kbs-session-id']}"}
            time.sleep(2.2)
            response = session._http.get(f"/kbs/v0/resource/{path}", headers=cookie)
        status, kind, detail = problem(response)
        assert (status, kind) == (401, "SessionExpired")
        assert "the session expired" in detail


def test_refusal_bodies_are_json_error_information(http):
    body = http.get("/kbs/v0/resource/a/table-key/phi").json()
    assert set(body) == {"type", "detail"}
    assert body["type"].startswith("urn:workbench:kbs:error:")
    json.dumps(body)
