"""The broker on PostgreSQL: replicas behind a load balancer share one real server store.

A private PostgreSQL server (pg_server.py) on 127.0.0.1 backs two `workbench kbs serve`
processes on one database. What SQLite cannot show is exercised here: migrations raced by
replicas starting together (advisory lock), audit appends from two processes serialised by
``SELECT ... FOR UPDATE`` on the head row (one chain, no fork), the psycopg form of the hot
statements, and `workbench audit verify` against a server database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import loadgen
import psycopg
import pytest
from kbs_helpers import (
    Broker,
    free_port,
    make_broker,
    provider_for,
    session_for,
    sim_policy,
)
from pg_server import postgres_server

from workbench.kbs.store.engine import MIGRATIONS


@pytest.fixture(scope="module")
def pg():
    with postgres_server() as server:
        yield server


def pg_broker(base: Path, url: str, kek: str, **settings) -> Broker:
    broker = make_broker(base, db=url, **settings)
    broker.env["WORKBENCH_KBS_KEK"] = kek
    return broker


def replica_of(first: Broker, log: Path) -> Broker:
    return Broker(home=first.home, port=free_port(), config=first.config, log=log,
                  env=first.env)


def connect(url: str) -> psycopg.Connection:
    """psycopg on the database a broker's SQLAlchemy URL names."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def query(url: str, sql: str, *params) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def release_refs(url: str) -> list[str]:
    rows = query(url, "SELECT payload FROM audit_log WHERE kind = 'release'")
    return [json.loads(payload)["session"] for (payload,) in rows]


def audit_verify(cli: str, url: str, broker: Broker) -> subprocess.CompletedProcess:
    # A server store has no key file beside it: the broker wrote it in its own home.
    return subprocess.run([cli, "audit", "verify", "--db", url,
                           f"--keys={broker.home / 'kbs' / 'broker-keys.jwks'}"],
                          capture_output=True, text=True, timeout=120)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


@pytest.fixture(scope="module")
def replicas(pg, tmp_path_factory, fixed_package):
    base = tmp_path_factory.mktemp("pg-replicas")
    url = pg.create_database("replicas")
    first = pg_broker(base, url, base64.b64encode(os.urandom(32)).decode())
    second = replica_of(first, base / "second.log")
    # Both start at once on an empty database: the migration lock must let exactly one
    # create the schema while the other waits, and both must come up.
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(b.start) for b in (first, second)]:
            future.result()
    try:
        yield url, first, second, provider_for(first, fixed_package)
    finally:
        second.stop()
        first.stop()


def test_replicas_started_together_migrate_the_database_once(replicas):
    url, first, second, _ = replicas
    assert query(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert query(url, "SELECT count(*) FROM broker_keys") == [(1,)]
    keys = [httpx.get(f"{b.url}/.well-known/jwks.json").json() for b in (first, second)]
    assert keys[0] == keys[1]


def test_a_session_attested_on_one_replica_is_served_by_the_other(replicas):
    _, first, second, provider = replicas
    key = os.urandom(32)
    first.add_resource("pg/table-key/phi", key, sim_policy(provider))
    with session_for(first, provider) as session:
        session.attest(["pg/table-key/phi"])
        cookie = session._http.cookies["kbs-session-id"]
    with httpx.Client(base_url=second.url, cookies={"kbs-session-id": cookie}) as other:
        response = other.get("/kbs/v0/resource/pg/table-key/phi")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}


def test_concurrent_load_on_both_replicas_keeps_one_chain(replicas, workbench_cli):
    url, first, second, provider = replicas
    key = os.urandom(32)
    first.add_resource("pgload/table-key/phi", key, sim_policy(provider))
    before = set(release_refs(url))

    async def both() -> list[loadgen.Outcome]:
        runs = [loadgen.run(b.url, provider, "pgload/table-key/phi", workers=20,
                            exchanges_per_worker=3) for b in (first, second)]
        return [o for outcomes in await asyncio.gather(*runs) for o in outcomes]

    outcomes = asyncio.run(both())
    assert [o.error for o in outcomes if not o.ok] == []
    assert len(outcomes) == 120 and all(o.key == key for o in outcomes)
    added = [ref for ref in release_refs(url) if ref not in before]
    assert sorted(added) == sorted(o.session_ref for o in outcomes)
    result = audit_verify(workbench_cli, url, first)
    assert result.returncode == 0, result.stderr
    (count,), = query(url, "SELECT count(*) FROM audit_log")
    assert f"audit log intact: {count} records" in result.stdout


def test_sigkill_of_one_replica_loses_no_acknowledged_release(replicas, workbench_cli):
    url, first, second, provider = replicas
    first.add_resource("pgkill/table-key/phi", os.urandom(32), sim_policy(provider))
    acknowledged: list[str] = []
    # The other replica keeps serving while this one is killed.
    outcomes = asyncio.run(loadgen.run_then_interrupt(
        [first.url, second.url], provider, "pgkill/table-key/phi", workers=10, after=40,
        interrupt=second.kill, acknowledged=acknowledged))
    assert second.process.returncode == -9
    assert any(not o.ok for o in outcomes), "the kill interrupted nothing in flight"
    second.start()
    assert set(acknowledged) <= set(release_refs(url))
    result = audit_verify(workbench_cli, url, first)
    assert result.returncode == 0, result.stderr
    after = asyncio.run(loadgen.run(second.url, provider, "pgkill/table-key/phi", workers=2,
                                    exchanges_per_worker=2))
    assert all(o.ok for o in after)


def test_an_edited_record_on_the_server_is_named(pg, tmp_path, fixed_package, workbench_cli):
    url = pg.create_database("edited")
    broker = pg_broker(tmp_path, url, base64.b64encode(os.urandom(32)).decode()).start()
    try:
        provider = provider_for(broker, fixed_package)
        broker.add_resource("edit/table-key/phi", os.urandom(32), sim_policy(provider))
        with session_for(broker, provider) as session:
            session.attest(["edit/table-key/phi"])
            session.get_resource("edit/table-key/phi")
    finally:
        broker.stop()
    with connect(url) as conn:
        conn.execute("UPDATE audit_log SET payload = replace(payload, 'edit/', 'EDIT/') "
                     "WHERE kind = 'release'")
    (seq,), = query(url, "SELECT seq FROM audit_log WHERE kind = 'release'")
    result = audit_verify(workbench_cli, url, broker)
    assert result.returncode != 0
    assert f"audit log broken at record {seq}: its hash does not match its content" \
        in result.stderr


def test_a_server_store_without_a_kek_is_refused(pg, tmp_path, workbench_cli):
    url = pg.create_database("nokek")
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE")}
    env.update(WORKBENCH_HOME=str(tmp_path), WORKBENCH_KBS_ADMIN_TOKEN="t" * 40)
    result = subprocess.run([workbench_cli, "kbs", "serve", "--db", url,
                             "--port", str(free_port())], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode != 0
    assert "no key-encryption key: give --kek-file" in result.stderr
    assert "a development key is generated only for a local SQLite store" in result.stderr


def test_a_server_store_opened_with_another_kek_is_refused(pg, tmp_path, workbench_cli):
    url = pg.create_database("otherkek")
    broker = pg_broker(tmp_path, url, base64.b64encode(os.urandom(32)).decode()).start()
    broker.stop()
    env = {**broker.env, "WORKBENCH_KBS_KEK": base64.b64encode(os.urandom(32)).decode()}
    result = subprocess.run([workbench_cli, "kbs", "serve", "--db", url,
                             "--port", str(free_port())], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode != 0
    assert "sealed under a different key-encryption key" in result.stderr
