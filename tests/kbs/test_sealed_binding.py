"""The sealed-session key in the evidence, the token and the policy rule (issue 12, items 1
and 6): a real broker process, a simulated kernel, keys bound or not."""

from __future__ import annotations

import base64
import os

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from kbs_helpers import Broker, free_port, make_broker, provider_for, sim_policy, unique

from workbench.attestation.tee.binding import report_data_for
from workbench.brokerclient import AnalystApproval, BrokerError, BrokerSession
from workbench.protocol import PROTOCOL_VERSION
from workbench.protocol.claims import SESSION_KEY_CLAIM
from workbench.sealed.channel import public_point
from workbench.sealed.keys import sealed_fingerprint


def _session_key() -> bytes:
    return public_point(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_the_token_states_the_bound_session_key(broker, provider) -> None:
    key = _session_key()
    path = unique("sealed-claim")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with BrokerSession(broker.url, provider=provider, session_key=key) as session:
        session.attest([path])
        claims = session.verified_claims()
        assert claims[SESSION_KEY_CLAIM] == key.hex()
        assert len(session.get_resource(path)) == 32
    with BrokerSession(broker.url, provider=provider) as unlocked:
        unlocked.attest([path])
        assert SESSION_KEY_CLAIM not in unlocked.verified_claims()


def test_sealed_session_required_refuses_an_unlocked_kernel(broker, provider) -> None:
    path = unique("sealed-only")
    secret = os.urandom(32)
    broker.add_resource(path, secret, sim_policy(provider, sealed_session="required"))
    with BrokerSession(broker.url, provider=provider) as unlocked:
        unlocked.attest([path])
        verdict = unlocked.verified_claims()["workbench.resources"][path]
        assert verdict["status"] == "contraindicated"
        assert verdict["failed_rules"] == ["sealed-session"]
        with pytest.raises(BrokerError) as refused:
            unlocked.get_resource(path)
    assert refused.value.kind == "PolicyDeny"
    assert [r["name"] for r in refused.value.failed_rules] == ["sealed-session"]
    assert "binds no session key" in str(refused.value)
    key = _session_key()
    with BrokerSession(broker.url, provider=provider, session_key=key) as locked:
        locked.attest([path])
        approval = AnalystApproval("sealed", sealed_fingerprint(key, locked.tee_pubkey))
        assert locked.get_resource(path, analyst=approval) == secret


def _audit(broker: Broker, kind: str, path: str) -> list[dict]:
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": kind, "limit": 1000}).json()
    return [r["payload"] for r in records if r["payload"].get("resource") == path]


@pytest.mark.parametrize(("approval", "why"), [
    (None, "and this one is none"),
    (AnalystApproval("interactive", "frontend"), "and this one is interactive"),
    (AnalystApproval("non-interactive", "WORKBENCH_AUTO_APPROVE=1"),
     "and this one is non-interactive"),
    (AnalystApproval("sealed", "f" * 64), "names another session ('ffffffffffffffff')"),
])
def test_a_sealed_only_resource_counts_only_a_sealed_approval_of_its_session(
        broker, provider, approval: AnalystApproval | None, why: str) -> None:
    path = unique("sealed-approval")
    broker.add_resource(path, os.urandom(32), sim_policy(provider, sealed_session="required"))
    with BrokerSession(broker.url, provider=provider, session_key=_session_key()) as locked:
        locked.attest([path])
        with pytest.raises(BrokerError) as refused:
            locked.get_resource(path, analyst=approval)
    assert refused.value.kind == "PolicyDeny" and why in str(refused.value)
    assert [r["name"] for r in refused.value.failed_rules] == ["sealed-approval"]
    [record] = _audit(broker, "refusal", path)
    assert record["failed_rules"] == ["sealed-approval"]


def test_free_text_about_who_approved_is_refused(broker, provider) -> None:
    path = unique("free-text")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with BrokerSession(broker.url, provider=provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as refused:
            session.get_resource(path, analyst=AnalystApproval("interactive",
                                                               "alice (forged by operator)"))
    assert "analyst-approval-by" in str(refused.value)


def test_the_audit_names_the_session_that_approved_never_free_text(broker, provider) -> None:
    path = unique("sealed-audit")
    broker.add_resource(path, os.urandom(32), sim_policy(provider, sealed_session="required"))
    key = _session_key()
    with BrokerSession(broker.url, provider=provider, session_key=key) as locked:
        locked.attest([path])
        fingerprint = sealed_fingerprint(key, locked.tee_pubkey)
        locked.get_resource(path, analyst=AnalystApproval("sealed", fingerprint))
    [release] = _audit(broker, "release", path)
    assert release["analyst_approval"] == {"mode": "sealed", "session": fingerprint}


def test_a_sealed_approval_from_a_kernel_with_no_session_is_refused(broker, provider) -> None:
    path = unique("sealed-claim-unlocked")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with BrokerSession(broker.url, provider=provider) as unlocked:
        unlocked.attest([path])
        with pytest.raises(BrokerError, match="binds no sealed session"):
            unlocked.get_resource(path, analyst=AnalystApproval("sealed", "0" * 64))


def _attest_by_hand(broker: Broker, provider, *, claimed: bytes, bound: bytes) -> httpx.Response:
    """An attest request claiming one session key with evidence binding another."""
    pubkey = {**JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True),
              "alg": "ECDH-ES+A256KW"}
    with httpx.Client(base_url=broker.url) as http:
        nonce = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION,
                                                "tee": "simulated"}).json()["nonce"]
        evidence = provider.evidence(report_data_for(nonce, pubkey, b"", bound))
        return http.post("/kbs/v0/attest", json={
            "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey,
                             "session-key": claimed.hex()},
            "tee-evidence": {"evidence": base64.b64encode(evidence).decode()}})


@pytest.mark.parametrize("case", ["claimed-not-bound", "bound-not-claimed", "another-key"])
def test_a_session_key_the_evidence_does_not_bind_is_refused(broker, provider, case) -> None:
    key, other = _session_key(), _session_key()
    claimed, bound = {"claimed-not-bound": (key, b""), "bound-not-claimed": (b"", key),
                      "another-key": (key, other)}[case]
    response = _attest_by_hand(broker, provider, claimed=claimed, bound=bound)
    assert response.status_code == 401, response.text
    assert response.json()["type"].endswith("BindingMismatch")
    assert "session-key" in response.json()["detail"]


@pytest.mark.parametrize("bad", ["04" + "ab" * 10, "02" + "ab" * 64, "not hex"])
def test_a_malformed_session_key_is_refused_before_any_evidence(broker, bad) -> None:
    with httpx.Client(base_url=broker.url) as http:
        nonce = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION,
                                                "tee": "simulated"}).json()["nonce"]
        response = http.post("/kbs/v0/attest", json={
            "runtime-data": {"nonce": nonce, "tee-pubkey": {"kty": "EC"}, "session-key": bad},
            "tee-evidence": {"evidence": "AA=="}})
    assert response.status_code == 400
    assert "session-key" in response.text


def test_a_replica_binds_the_stored_session_key_too(tmp_path, fixed_package) -> None:
    first = make_broker(tmp_path).start()
    second = Broker(home=first.home, port=free_port(), config=first.config,
                    log=tmp_path / "second.log", env=first.env).start()
    try:
        provider = provider_for(first, fixed_package)
        path = "replica-sealed/table-key/phi"
        secret = os.urandom(32)
        first.add_resource(path, secret, sim_policy(provider, sealed_session="required"))
        key = _session_key()
        with BrokerSession(first.url, provider=provider, session_key=key) as s:
            s.attest([path])
            cookie = s._http.cookies["kbs-session-id"]
        # The second replica re-verifies the stored evidence against the stored session key,
        # and checks the sealed approval against it.
        with BrokerSession(second.url, provider=provider) as other:
            other._http.cookies.set("kbs-session-id", cookie)
            other._key = s._key
            approval = AnalystApproval("sealed", sealed_fingerprint(key, s.tee_pubkey))
            assert other.get_resource(path, analyst=approval) == secret
    finally:
        second.stop()
        first.stop()


def test_a_store_from_before_session_keys_reads_its_sessions_as_unsealed(tmp_path) -> None:
    from sqlalchemy import select, text

    from workbench.kbs.store import open_store
    from workbench.kbs.store.schema import sessions

    url = f"sqlite:///{tmp_path / 'kbs.db'}"
    old = open_store(url, migrate=False)
    old.migrate("0002")
    with old.write() as conn:
        # An attested session as 0002 stored it: no session_key column yet.
        conn.execute(text(
            "INSERT INTO sessions (id, tee, nonce, state, resources, created_at, expires_at, "
            "transport_key) VALUES ('s1', 'simulated', 'n', 'attested', '[]', 't', 't', '')"))
    old.dispose()
    store = open_store(url)
    with store.read() as conn:
        row = conn.execute(select(sessions)).one()
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    store.dispose()
    assert version == "0006" and row.id == "s1" and row.session_key is None
    assert row.binding is None
    assert row.session_certificate is None


def test_the_data_owner_prints_the_fingerprint_frontends_pin(broker, provider,
                                                             workbench_cli: str,
                                                             tmp_path) -> None:
    import json
    import subprocess

    from workbench.client.pins import fingerprint

    done = subprocess.run([workbench_cli, "kbs", "fingerprint", "--db", broker.db_url,
                           "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [printed] = json.loads(done.stdout)
    with BrokerSession(broker.url, provider=provider) as session:
        session.attest([])
        [published] = session.broker_keys()
        header = json.loads(base64.urlsafe_b64decode(session.token.split(".")[0] + "=="))
    assert printed == fingerprint(published.export_public(as_dict=True)) \
        == "SHA256:" + header["kid"]
    missing = subprocess.run([workbench_cli, "kbs", "fingerprint", "--db",
                              f"sqlite:///{tmp_path / 'none.db'}"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such store" in missing.stderr
