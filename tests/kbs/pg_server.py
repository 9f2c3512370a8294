"""A private PostgreSQL server for the broker's server-database tests, on 127.0.0.1.

It runs the machine's PostgreSQL binaries (Debian's ``postgresql`` package, which .ci/run
installs) on a throwaway cluster: trust authentication, reachable on a free loopback port
only, removed with the test session. PostgreSQL refuses to run as root, so as root the
cluster belongs to the ``postgres`` account the package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from kbs_helpers import free_port

START_TIMEOUT_S = 60.0
SUPERUSER = "workbench"
INSTALL_HINT = ("install the Debian package 'postgresql' (apt-get install postgresql; "
                ".ci/run does) or set WORKBENCH_PG_BINDIR to a PostgreSQL bin directory")


def find_bindir() -> Path:
    configured = os.environ.get("WORKBENCH_PG_BINDIR")
    candidates = [Path(configured)] if configured else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name),
        reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise RuntimeError(f"PostgreSQL server binaries not found: {INSTALL_HINT}")


@dataclass
class PostgresServer:
    port: int
    process: subprocess.Popen

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, **options) -> psycopg.Connection:
        """To the server's maintenance database, as the superuser."""
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                               dbname="postgres", **options)

    def create_database(self, name: str) -> str:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


def _initdb(bindir: Path, data: Path, owner: str | None) -> None:
    result = subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U",
                                       SUPERUSER, "--auth=trust", "--encoding=UTF8",
                                       "--no-sync"], owner),
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    owner = None
    # Not under pytest's temporary directory: its parents are private to this user, and
    # the server may run as another one.
    base = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    try:
        if os.geteuid() == 0:
            owner = "postgres"
            try:
                account = pwd.getpwnam(owner)
            except KeyError:
                raise RuntimeError(f"running as root needs the '{owner}' account: "
                                   f"{INSTALL_HINT}") from None
            base.chmod(0o755)
        data, sockets = base / "data", base / "sockets"
        for path in (data, sockets):
            path.mkdir()
            if owner:
                os.chown(path, account.pw_uid, account.pw_gid)
        _initdb(bindir, data, owner)
        with _running(bindir, base, owner) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _running(bindir: Path, base: Path, owner: str | None) -> Iterator[PostgresServer]:
    data, sockets = base / "data", base / "sockets"
    port = free_port()
    log = (base / "postgres.log").open("wb")
    # fsync off: a killed broker is what the tests cut short, never this server.
    process = subprocess.Popen(
        _as_owner([str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
                   "-c", "fsync=off", "-c", "max_connections=200"], owner),
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = PostgresServer(port, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError("PostgreSQL exited:\n" + (base / "postgres.log").read_text())
            try:
                server.connect(connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
