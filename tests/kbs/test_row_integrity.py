"""Rows a release acts on are authenticated under the KEK (workbench.kbs.row_mac): whoever
writes the broker's database (sqlite3, as the attacker would), holding neither the KEK nor
the admin token, can no longer swap a policy, approve a release or register an analyst.
And migration 0006 authenticates a store's existing rows when the broker upgrades it.
Against real broker processes on stores of their own."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kbs_helpers import Broker, make_broker, provider_for, running_broker, sim_policy, unique
from sqlalchemy import insert, select, text

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.brokerclient import BrokerError, BrokerSession
from workbench.errors import InputError
from workbench.kbs.broker_key import check_kek
from workbench.kbs.kek import Kek, KekMismatch, load_kek
from workbench.kbs.store import open_store
from workbench.kbs.store.schema import analysts, approvals, resources
from workbench.protocol.claims import ANALYST_CLAIM
from workbench.sealed.certificate import certify, fingerprint, jwk_of
from workbench.sealed.channel import public_point

INTEGRITY = "does not authenticate under the broker's key-encryption key: the database " \
            "was changed outside the broker"


@pytest.fixture(scope="module")
def own(tmp_path_factory, fixed_package) -> Iterator[tuple[Broker, SimulatedProvider,
                                                           SimulatedProvider]]:
    base = tmp_path_factory.mktemp("row-integrity")
    with running_broker(base) as broker:
        evil = base / "evil"
        evil.mkdir()
        (evil / "__init__.py").write_text("steal()\n")
        yield broker, provider_for(broker, fixed_package), provider_for(broker, evil)


def _sql(broker: Broker, statement: str, *values: object) -> None:
    with sqlite3.connect(broker.db, timeout=30) as db:
        db.execute(statement, values)
    db.close()


def _refused(broker: Broker, provider: SimulatedProvider, path: str) -> BrokerError:
    with BrokerSession(broker.url, provider=provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path, wait_s=0)  # a release left pending fails, not waits
    return caught.value


def test_a_policy_swapped_in_the_database_releases_nothing(own, workbench_cli,
                                                           tmp_path) -> None:
    broker, kernel, evil = own
    path = unique("swapped")
    secret = os.urandom(32)
    owner_policy = sim_policy(kernel)
    broker.add_resource(path, secret, owner_policy)
    evil_policy = sim_policy(evil, id=owner_policy["id"])
    # A time no process has cached, so every process reads the row again.
    _sql(broker, "UPDATE resources SET policy = ?, updated_at = ? WHERE path = ?",
         json.dumps(evil_policy, sort_keys=True, separators=(",", ":")),
         "2099-01-01T00:00:00.000000+00:00", path)
    for provider in (evil, kernel):
        refused = _refused(broker, provider, path)
        assert refused.kind == "PolicyDeny"
        assert f"the broker's record of {path} {INTEGRITY}" in str(refused)
        assert [r["name"] for r in refused.failed_rules] == ["row-integrity"]
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": "refusal", "limit": 1000}).json()
    assert sum(1 for r in records if r["payload"].get("resource") == path
               and r["payload"]["failed_rules"] == ["row-integrity"]) == 2
    # The log itself was not touched: it verifies, and it shows the refusals.
    verified = subprocess.run([workbench_cli, "audit", "verify", "--db", broker.db_url],
                              capture_output=True, text=True, timeout=60, env=broker.env)
    assert verified.returncode == 0, verified.stderr
    # The owner states the policy again: the row is the broker's once more.
    with broker.admin() as admin:
        assert admin.put(f"/resources/{path}/policy",
                         json={"policy": owner_policy}).status_code == 200
    with BrokerSession(broker.url, provider=kernel) as session:
        session.attest([path])
        assert session.get_resource(path) == secret
    assert _refused(broker, evil, path).kind == "PolicyDeny"


@pytest.mark.parametrize("column", ["require_approval", "users", "approval_timeout_s"])
def test_any_release_relevant_column_changed_is_refused(own, column: str) -> None:
    broker, kernel, _ = own
    path = unique(f"changed-{column}")
    broker.add_resource(path, os.urandom(32), sim_policy(kernel), require_approval=True,
                        users=["alice"])
    value = {"require_approval": 0, "users": None, "approval_timeout_s": 10**6}[column]
    _sql(broker, f"UPDATE resources SET {column} = ? WHERE path = ?", value, path)  # noqa: S608
    refused = _refused(broker, kernel, path)
    assert refused.kind == "PolicyDeny" and INTEGRITY in str(refused)


def test_an_approval_flipped_in_the_database_releases_nothing(own) -> None:
    broker, kernel, _ = own
    path = unique("gated")
    broker.add_resource(path, os.urandom(32), sim_policy(kernel), require_approval=True)
    with BrokerSession(broker.url, provider=kernel) as session:
        session.attest([path])
        request = session.fetch(path).request_id
        _sql(broker, "UPDATE approvals SET state = 'approved', decided_at = created_at "
                     "WHERE id = ?", request)
        with pytest.raises(BrokerError) as caught:
            session.fetch(path)
    assert caught.value.kind == "PolicyDeny"
    assert f"approval request {request} for {path} {INTEGRITY}" in str(caught.value)
    with broker.admin() as admin:
        kinds = [r["kind"] for r in admin.get("/audit", params={"limit": 1000}).json()
                 if r["payload"].get("resource") == path]
        late = admin.post(f"/approvals/{request}/deny", json={})
    assert "release" not in kinds and "approval" not in kinds
    assert late.status_code == 409 and "it cannot be decided" in late.json()["detail"]


def test_an_analyst_inserted_in_the_database_is_nobody(own) -> None:
    broker, kernel, _ = own
    analyst = ec.generate_private_key(ec.SECP256R1())
    key = jwk_of(analyst.public_key())
    name = f"mallory-{uuid.uuid4().hex[:6]}"
    _sql(broker, "INSERT INTO analysts (name, fingerprint, public_jwk, groups, added_at) "
                 "VALUES (?, ?, ?, '[\"oncology\"]', '2026-01-01T00:00:00+00:00')",
         name, fingerprint(key), json.dumps(key, sort_keys=True))
    path = unique("for-oncology")
    broker.add_resource(path, os.urandom(32), sim_policy(
        kernel, sealed_session="required", analyst_groups=["oncology"]))
    session_key = ec.generate_private_key(ec.SECP256R1())
    with BrokerSession(broker.url, provider=kernel,
                       session_key=public_point(session_key.public_key())) as session:
        session.session_certificate = certify(
            analyst, session_key.public_key(), ec.generate_private_key(
                ec.SECP256R1()).public_key(), session.tee_pubkey).to_json()
        session.attest([path])
        claim = session.verified_claims()[ANALYST_CLAIM]
    assert claim == {"fingerprint": fingerprint(key), "standing": "tampered", "name": None}


# -- migration 0006 ------------------------------------------------------------------------

def _store_as_0005(broker: Broker, kernel: SimulatedProvider, secret: bytes) -> str:
    """A store as the release before row MACs left it: one resource (its key sealed under
    the store's dev KEK), one pending approval, one analyst."""
    url = broker.db_url
    broker.db.parent.mkdir(parents=True, exist_ok=True)
    kek = load_kek(None, broker.db.parent)
    store = open_store(url, migrate=False)
    store.migrate("0005")
    path = "cohort/table-key/phi"
    sealed = kek.seal(secret, f"resource:{path}")
    policy = json.dumps(sim_policy(kernel), sort_keys=True, separators=(",", ":"))
    key = jwk_of(ec.generate_private_key(ec.SECP256R1()).public_key())
    with store.write() as conn:
        check_kek(conn, kek)
        conn.execute(insert(resources).values(
            path=path, policy=policy, require_approval=False, approval_timeout_s=60,
            status="active", version=1, key_nonce=sealed.nonce, key_sealed=sealed.ciphertext,
            key_length=len(secret), created_at="2026-12-01T00:00:00.000000+00:00",
            updated_at="2026-12-01T00:00:00.000000+00:00"))
        conn.execute(insert(approvals).values(
            id="req-0123456789abcdef", session_id="s" * 32, resource=path, state="pending",
            summary="{}", created_at="2026-12-01T00:00:00.000000+00:00",
            deadline="2999-01-01T00:00:00.000000+00:00"))
        conn.execute(insert(analysts).values(
            name="alice", fingerprint=fingerprint(key), public_jwk=json.dumps(key),
            groups="[]", added_at="2026-12-01T00:00:00+00:00"))
    store.dispose()
    return path


def test_the_broker_authenticates_an_older_stores_rows_when_it_upgrades_it(
        tmp_path: Path, fixed_package) -> None:
    broker = make_broker(tmp_path)
    kernel = provider_for(broker, fixed_package)
    secret = os.urandom(32)
    path = _store_as_0005(broker, kernel, secret)
    broker.start()
    try:
        with BrokerSession(broker.url, provider=kernel) as session:
            session.attest([path])
            assert session.get_resource(path) == secret
        with broker.admin() as admin:
            records = admin.get("/audit", params={"kind": "admin", "limit": 10}).json()
            pending = admin.get("/approvals").json()
        assert [r["payload"] for r in records] == [{
            "action": "row-authentication",
            "rows": {"resources": 1, "approvals": 1, "analysts": 1}}]
        assert [a["id"] for a in pending] == ["req-0123456789abcdef"]
        # Restarted, nothing is authenticated again.
        broker.stop()
        broker.start()
        with broker.admin() as admin:
            again = admin.get("/audit", params={"kind": "admin", "limit": 10}).json()
        assert len(again) == 1
    finally:
        broker.stop()
    with sqlite3.connect(broker.db) as db:
        version = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        macs = [db.execute(f"SELECT row_mac FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("resources", "approvals", "analysts")]
    db.close()
    assert version == "0006" and all(len(m) == 64 for m in macs)


def test_an_older_store_with_rows_is_not_upgraded_without_its_kek(tmp_path: Path,
                                                                  fixed_package) -> None:
    broker = make_broker(tmp_path)
    _store_as_0005(broker, provider_for(broker, fixed_package), os.urandom(32))
    with pytest.raises(InputError, match="start the broker on it"):
        open_store(broker.db_url)
    with pytest.raises(KekMismatch, match="different key-encryption key"):
        open_store(broker.db_url, kek=Kek(os.urandom(32)))
    # Both left it as it was.
    store = open_store(broker.db_url, migrate=False)
    with store.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == "0005"
        assert conn.execute(select(resources.c.path)).scalar() == "cohort/table-key/phi"
    store.dispose()


def test_an_empty_store_needs_no_kek_to_upgrade(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'kbs.db'}")
    with store.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == "0006"
    store.dispose()


def test_rows_the_broker_writes_carry_their_mac(own) -> None:
    broker, kernel, _ = own
    path = unique("fresh")
    broker.add_resource(path, os.urandom(32), sim_policy(kernel))
    with sqlite3.connect(broker.db) as db:
        [mac] = db.execute("SELECT row_mac FROM resources WHERE path = ?", (path,)).fetchone()
    db.close()
    assert isinstance(mac, str) and len(mac) == 64
