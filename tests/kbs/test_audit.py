"""The audit log: a signed hash chain that `workbench audit verify` checks record by record.

Records are produced by a real broker; tampering happens directly in SQLite, on a copy of
the store, the way someone with file access would do it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kbs_helpers import running_broker, session_for, sim_policy, unique

from workbench.kbs import audit
from workbench.kbs.broker_key import load_or_create
from workbench.kbs.kek import KEK_BYTES, Kek
from workbench.kbs.store import open_store


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A store of its own: the tampering tests name records by their sequence number."""
    with running_broker(tmp_path_factory.mktemp("audit")) as running:
        yield running


@pytest.fixture(scope="module")
def busy_store(broker, provider) -> Path:
    """The module broker's store after admin changes, releases and refusals."""
    for index in range(3):
        path = unique(f"audit{index}")
        broker.add_resource(path, os.urandom(32), sim_policy(provider))
        with session_for(broker, provider) as session:
            session.attest([path])
            session.get_resource(path)
            try:
                session.get_resource("missing/table-key/phi")
            except Exception as err:
                assert "not found" in str(err)
    return broker.db


@pytest.fixture
def store_copy(busy_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(busy_store) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    source.close()
    target.close()
    return copy


def run_verify(cli: str, db: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli, "audit", "verify", "--db", f"sqlite:///{db}", *options],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def keys(broker) -> str:
    """``--keys`` and the broker's key file: a copy of the store has none beside it."""
    return f"--keys={broker.home / 'kbs' / 'broker-keys.jwks'}"


def count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def tamper(db: Path, *statements: tuple[str, tuple]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def test_intact_log_verifies_while_the_broker_runs(workbench_cli, busy_store):
    result = run_verify(workbench_cli, busy_store)
    assert result.returncode == 0, result.stderr
    assert f"audit log intact: {count(busy_store)} records" in result.stdout


def test_log_holds_every_kind_of_event(busy_store):
    with sqlite3.connect(busy_store) as conn:
        kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM audit_log")}
    assert {"startup", "admin", "auth", "attest", "release", "refusal"} <= kinds


def test_edited_payload_is_detected_and_named(workbench_cli, store_copy, keys):
    tamper(store_copy, ("UPDATE audit_log SET payload = replace(payload, 'simulated', "
                        "'tdx') WHERE seq = 7", ()))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "audit log broken at record 7: its hash does not match its content" in result.stderr


def test_edited_kind_is_detected(workbench_cli, store_copy, keys):
    tamper(store_copy, ("UPDATE audit_log SET kind = 'auth' WHERE seq = 5", ()))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "broken at record 5" in result.stderr


def test_deleted_record_is_detected_and_named(workbench_cli, store_copy, keys):
    tamper(store_copy, ("DELETE FROM audit_log WHERE seq = 4", ()))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "broken at record 4: record 4 is missing (sequence jumps from 3 to 5)" \
        in result.stderr


def test_reordered_records_are_detected_and_named(workbench_cli, store_copy, keys):
    tamper(store_copy,
           ("UPDATE audit_log SET seq = -1 WHERE seq = 6", ()),
           ("UPDATE audit_log SET seq = 6 WHERE seq = 7", ()),
           ("UPDATE audit_log SET seq = 7 WHERE seq = -1", ()))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "broken at record 6" in result.stderr


def test_truncated_tail_is_detected(workbench_cli, store_copy, keys):
    last = count(store_copy)
    tamper(store_copy, ("DELETE FROM audit_log WHERE seq = ?", (last,)))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert f"the head names record {last} but the log ends at {last - 1}" in result.stderr


def test_recomputed_hashes_do_not_hide_an_edit(workbench_cli, store_copy, keys):
    """Rewriting payload, hash and the following prev_hash without the key still fails."""
    conn = sqlite3.connect(store_copy)
    seq, time, kind, payload, prev = conn.execute(
        "SELECT seq, time, kind, payload, prev_hash FROM audit_log WHERE seq = 8").fetchone()
    forged = payload.replace("simulated", "sgx")
    digest = hashlib.sha256(audit.message(seq, time, kind, prev, forged)).hexdigest()
    with conn:
        conn.execute("UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 8", (forged, digest))
        conn.execute("UPDATE audit_log SET prev_hash = ? WHERE seq = 9", (digest,))
    conn.close()
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "broken at record 8: its signature does not verify" in result.stderr


def test_forged_signature_is_detected(workbench_cli, store_copy, keys):
    bogus = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    tamper(store_copy, ("UPDATE audit_log SET signature = ? WHERE seq = 3", (bogus,)))
    result = run_verify(workbench_cli, store_copy, keys)
    assert result.returncode == 1
    assert "broken at record 3: its signature does not verify" in result.stderr


def test_verify_of_a_missing_store_is_an_input_error(workbench_cli, tmp_path):
    result = run_verify(workbench_cli, tmp_path / "absent.db")
    assert result.returncode == 2
    assert "no such store" in result.stderr


def test_concurrent_appends_from_two_store_handles_keep_one_chain(tmp_path):
    """Two Store objects are two writers that do not share a lock, as two processes would:
    the chain head row (BEGIN IMMEDIATE) alone must serialise them."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    kek = Kek(os.urandom(KEK_BYTES))
    first = open_store(url)
    key = load_or_create(first, kek)
    second = open_store(url)
    errors: list[BaseException] = []

    def writer(store, name: str) -> None:
        try:
            for index in range(60):
                with store.write() as conn:
                    audit.append(conn, key, "admin", {"writer": name, "n": index},
                                 datetime.now(UTC))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(store, f"{label}{i}"))
               for label, store in (("a", first), ("b", second)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with first.read() as conn:
        verdict = audit.verify_chain(conn, {key.kid: key.private_key.public_key()})
    assert verdict.ok, verdict.describe()
    assert verdict.records == 360
    first.dispose()
    second.dispose()
