"""Bounded load on loopback: 200 concurrent clients, and a broker killed mid-load.

Every acknowledged release must have its audit record: the record is committed before the
response leaves, so neither load nor SIGKILL may lose one, and the chain must still verify.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess

import loadgen
import pytest
from kbs_helpers import provider_for, running_broker, sim_policy

CLIENTS = 200


def release_refs(db) -> list[str]:
    import json

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM audit_log WHERE kind = 'release'").fetchall()
    return [json.loads(payload)["session"] for (payload,) in rows]


def verify(cli: str, db) -> subprocess.CompletedProcess:
    return subprocess.run([cli, "audit", "verify", "--db", f"sqlite:///{db}"],
                          capture_output=True, text=True, timeout=120)


def test_200_concurrent_clients_all_succeed_with_one_record_each(tmp_path, fixed_package,
                                                                  workbench_cli):
    with running_broker(tmp_path) as broker:
        provider = provider_for(broker, fixed_package)
        key = os.urandom(32)
        broker.add_resource("load/table-key/phi", key, sim_policy(provider))
        outcomes = asyncio.run(loadgen.run(broker.url, provider, "load/table-key/phi",
                                           workers=CLIENTS, exchanges_per_worker=1))
        errors = [o.error for o in outcomes if not o.ok]
        assert errors == []
        assert len(outcomes) == CLIENTS
        assert all(o.key == key for o in outcomes)
        refs = release_refs(broker.db)
        assert sorted(refs) == sorted(o.session_ref for o in outcomes)
        assert len(set(refs)) == CLIENTS
        result = verify(workbench_cli, broker.db)
        assert result.returncode == 0, result.stderr


def test_sigkill_during_load_loses_no_acknowledged_release(tmp_path, fixed_package,
                                                           workbench_cli):
    with running_broker(tmp_path) as broker:
        provider = provider_for(broker, fixed_package)
        broker.add_resource("kill/table-key/phi", os.urandom(32), sim_policy(provider))
        acknowledged: list[str] = []
        outcomes = asyncio.run(loadgen.run_then_interrupt(
            [broker.url], provider, "kill/table-key/phi", workers=20, after=60,
            interrupt=broker.kill, acknowledged=acknowledged))
        assert broker.process.returncode == -9
        assert len(acknowledged) >= 60
        assert any(not o.ok for o in outcomes), "the kill interrupted nothing in flight"
        broker.start()  # same store, same KEK
        recorded = set(release_refs(broker.db))
        assert set(acknowledged) <= recorded
        result = verify(workbench_cli, broker.db)
        assert result.returncode == 0, result.stderr
        after = asyncio.run(loadgen.run(broker.url, provider, "kill/table-key/phi", workers=2,
                                        exchanges_per_worker=2))
        assert all(o.ok for o in after)


def test_load_generator_refuses_other_hosts(provider):
    with pytest.raises(ValueError, match="loopback only"):
        asyncio.run(loadgen.run("http://example.org", provider, "a/b/c", workers=1,
                                exchanges_per_worker=1))
