"""The witness: the broker pushes signed checkpoints out of its database as the log grows.

Real brokers on 127.0.0.1 push to a directory or to a small loopback HTTP server started
here; the checkpoints they push are then used by `workbench audit verify --checkpoint`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from kbs_helpers import (
    Broker,
    free_port,
    make_broker,
    provider_for,
    running_broker,
    session_for,
    sim_policy,
)
from pg_server import postgres_server

from workbench.kbs.witness import checkpoint_name

WAIT_S = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def exchange(broker: Broker, provider, path: str) -> bytes:
    with session_for(broker, provider) as session:
        session.attest([path])
        return session.get_resource(path)


def head(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq FROM audit_head").fetchone()[0]


def verify(cli: str, db_url: str, key_file: Path, points: list[Path]
           ) -> subprocess.CompletedProcess:
    return subprocess.run([cli, "audit", "verify", "--db", db_url, f"--keys={key_file}",
                           *(f"--checkpoint={p}" for p in points)],
                          capture_output=True, text=True, timeout=120)


class Witness:
    """A loopback HTTP witness: records each POSTed checkpoint; ``answer`` decides the
    status (and may block, to stand for a witness that hangs)."""

    def __init__(self, answer: Callable[[int], int]) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        self.answered = 0
        self._answer = answer
        lock = threading.Lock()
        witness = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    witness.attempts += 1
                    attempt = witness.attempts
                status = witness._answer(attempt)
                with lock:
                    witness.answered += 1
                    if status == 200:
                        witness.received.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/checkpoints"

    @contextlib.contextmanager
    def serving(self) -> Iterator[Witness]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def test_a_directory_witness_gets_a_checkpoint_every_n_records(tmp_path, fixed_package,
                                                               workbench_cli):
    witness = tmp_path / "witness"
    with running_broker(tmp_path, audit_witness=str(witness), audit_checkpoint_every=4,
                        audit_checkpoint_interval_s=3600) as broker:
        provider = provider_for(broker, fixed_package)
        path = "witnessed/table-key/phi"
        broker.add_resource(path, os.urandom(32), sim_policy(provider))
        for _ in range(3):
            exchange(broker, provider, path)
        end = head(broker.db)
        expected = [checkpoint_name(seq) for seq in range(4, end + 1, 4)]
        wait_for(lambda: sorted(p.name for p in witness.iterdir()) == expected,
                 f"checkpoints {expected}")
    points = sorted(witness.iterdir())
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in points)
    assert [json.loads(p.read_text())["seq"] for p in points] == list(range(4, end + 1, 4))
    result = verify(workbench_cli, broker.db_url, broker.home / "kbs" / "broker-keys.jwks",
                    points)
    assert result.returncode == 0, result.stderr
    assert f"{len(points)} checkpoint(s) agree" in result.stdout


def test_a_directory_witness_gets_the_head_every_interval(tmp_path, fixed_package):
    witness = tmp_path / "witness"
    with running_broker(tmp_path, audit_witness=str(witness),
                        audit_checkpoint_every=1_000_000,
                        audit_checkpoint_interval_s=1) as broker:
        provider = provider_for(broker, fixed_package)
        broker.add_resource("ticking/table-key/phi", os.urandom(32), sim_policy(provider))
        end = head(broker.db)
        wait_for(lambda: (witness / checkpoint_name(end)).exists(), "the head's checkpoint")
    assert json.loads((witness / checkpoint_name(end)).read_text())["seq"] == end


def test_a_failing_url_witness_is_retried_and_never_fails_a_release(tmp_path, fixed_package,
                                                                    workbench_cli):
    # The first two pushes are refused; the broker must keep serving and push again.
    with Witness(lambda attempt: 503 if attempt <= 2 else 200).serving() as witness, \
            running_broker(tmp_path, audit_witness=witness.url, audit_checkpoint_every=2,
                           audit_checkpoint_interval_s=1) as broker:
        provider = provider_for(broker, fixed_package)
        path = "flaky/table-key/phi"
        key = os.urandom(32)
        broker.add_resource(path, key, sim_policy(provider))
        assert exchange(broker, provider, path) == key
        end = head(broker.db)
        wait_for(lambda: any(r["seq"] >= end for r in witness.received),
                 "a checkpoint of the head after the refusals")
    assert witness.attempts > 2
    assert "pushing the checkpoint of record" in broker.log.read_text()
    assert "(the witness answered HTTP 503)" in broker.log.read_text()
    newest = max(witness.received, key=lambda r: r["seq"])
    (tmp_path / "newest.json").write_text(json.dumps(newest))
    result = verify(workbench_cli, broker.db_url, broker.home / "kbs" / "broker-keys.jwks",
                    [tmp_path / "newest.json"])
    assert result.returncode == 0, result.stderr


def test_a_hanging_url_witness_does_not_hold_up_releases(tmp_path, fixed_package):
    gate = threading.Event()

    def hang(_attempt: int) -> int:
        gate.wait(WAIT_S)
        return 200

    with Witness(hang).serving() as witness, \
            running_broker(tmp_path, audit_witness=witness.url, audit_checkpoint_every=1,
                           audit_checkpoint_interval_s=3600) as broker:
        provider = provider_for(broker, fixed_package)
        path = "hung/table-key/phi"
        key = os.urandom(32)
        broker.add_resource(path, key, sim_policy(provider))
        wait_for(lambda: witness.attempts >= 1, "the first push to reach the witness")
        # Every record is due for a checkpoint and the witness answers none: releases go on.
        released = [exchange(broker, provider, path) for _ in range(3)]
        assert witness.answered == 0
        gate.set()
    assert released == [key] * 3


def test_postgres_replicas_push_each_checkpoint_once(tmp_path, fixed_package, workbench_cli):
    with postgres_server() as pg, Witness(lambda _attempt: 200).serving() as witness:
        url = pg.create_database("witnessed")
        settings = {"db": url, "audit_witness": witness.url, "audit_checkpoint_every": 5,
                    "audit_checkpoint_interval_s": 3600}
        kek = base64.b64encode(os.urandom(32)).decode()
        with running_pg_pair(tmp_path, kek, settings) as (first, second):
            provider = provider_for(first, fixed_package)
            path = "replicated/table-key/phi"
            first.add_resource(path, os.urandom(32), sim_policy(provider))
            for _ in range(4):
                for broker in (first, second):
                    exchange(broker, provider, path)
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as c:
                (end,), = c.execute("SELECT seq FROM audit_head").fetchall()
            expected = list(range(5, end + 1, 5))
            wait_for(lambda: sorted(r["seq"] for r in witness.received) == expected,
                     f"one checkpoint for each of {expected}")
        # The replica that appended a record issued its checkpoint: both replicas did some.
        assert {r["broker"] for r in witness.received} == {first.url, second.url}
        points = []
        for received in witness.received:
            points.append(tmp_path / f"point-{received['seq']}.json")
            points[-1].write_text(json.dumps(received))
        result = verify(workbench_cli, url, first.home / "kbs" / "broker-keys.jwks", points)
        assert result.returncode == 0, result.stderr
        assert f"{len(points)} checkpoint(s) agree" in result.stdout


@contextlib.contextmanager
def running_pg_pair(base: Path, kek: str, settings: dict) -> Iterator[tuple[Broker, Broker]]:
    first = make_broker(base, **settings)
    first.env["WORKBENCH_KBS_KEK"] = kek
    second = Broker(home=first.home, port=free_port(), config=first.config,
                    log=base / "second.log", env=first.env)
    first.start()
    try:
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()

