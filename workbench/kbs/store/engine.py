"""Open the store: engine, SQLite pragmas, transaction modes, migrations.

SQLite: the file is created 0600 before SQLite touches it (its -wal/-shm files inherit the
mode), runs in WAL mode, and write transactions start with ``BEGIN IMMEDIATE`` so two
writers never deadlock upgrading read locks; within one process a lock also keeps writers
from spinning on SQLite's busy handler. PostgreSQL: migrations take an advisory lock and
audit appends lock the chain-head row (see :mod:`workbench.kbs.audit`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from workbench.errors import InputError

log = logging.getLogger("workbench.kbs")
MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant naming the broker's migration lock in PostgreSQL.
PG_MIGRATION_LOCK = 0x6B6273
BUSY_TIMEOUT_MS = 30_000
BEGIN_OPTION = "kbs_begin"
_BEGIN = {mode: f"BEGIN {mode}" for mode in ("IMMEDIATE", "DEFERRED")}
# conn.info key of the list where a write transaction collects what it announces after
# commit (audit records, for the witness): a rolled-back transaction announces nothing.
COMMIT_NOTES = "kbs_commit_notes"


def note_after_commit(conn: Connection, item: Any) -> None:
    """Hand ``item`` to the store's ``after_commit`` once ``conn``'s transaction commits
    (ignored outside ``Store.write()``)."""
    notes = conn.info.get(COMMIT_NOTES)
    if notes is not None:
        notes.append(item)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _create_private_file(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_setup(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control from the driver so BEGIN mode is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        # Straight to the driver: this runs for every transaction.
        conn.connection.driver_connection.execute(_BEGIN[mode])


def _open_lock_file(db: Path) -> int:
    lock = db.with_name(db.name + ".lock")
    return os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)


class Store:
    """The engine plus the two ways to use it: ``write()`` and ``read()`` transactions."""

    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise InputError(f"{url}: not a database URL ({err})") from err
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.path = sqlite_path(url)
        if self.path is not None:
            _create_private_file(self.path)
        kwargs: dict = {"pool_size": 8, "max_overflow": 24}
        if not self.is_sqlite:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError) as err:
            raise InputError(f"{parsed.render_as_string(hide_password=True)}: "
                             f"database driver not installed ({err})") from err
        if self.is_sqlite:
            _sqlite_setup(self.engine, synchronous.upper())
        self._reader = self.engine.execution_options(**{BEGIN_OPTION: "DEFERRED"})
        self._write_lock = threading.Lock()
        # Called with what a write transaction noted, after it committed (the witness).
        self.after_commit: Callable[[list[Any]], None] | None = None
        self._lock_file = _open_lock_file(self.path) if self.path is not None else None

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        # Threads queue on the lock, processes on flock: both wake the next writer at once,
        # where SQLite's own busy handler would sleep and poll.
        with self._write_lock:
            if self._lock_file is None:
                yield
                return
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on normal exit."""
        notes: list[Any] = []
        with self._writer_turn(), self.engine.begin() as conn:
            # conn.info belongs to the pooled DBAPI connection: set and cleared per use.
            conn.info[COMMIT_NOTES] = notes
            try:
                yield conn
            finally:
                conn.info.pop(COMMIT_NOTES, None)
        if notes and self.after_commit is not None:
            # Committed is committed: what listens afterwards must not turn it into an error.
            try:
                self.after_commit(notes)
            except Exception:
                log.exception("after-commit listener failed")

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.begin() as conn:
            yield conn

    def serialize_setup(self, conn: Connection) -> None:
        """Inside a write transaction: one replica at a time does setup (migrations, the
        first broker key), until the transaction ends. SQLite writers are serialized
        already; a server database takes a transaction-scoped advisory lock."""
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})

    def migrate(self, revision: str = "head", *, kek: Any = None) -> dict[str, int]:
        """Bring the schema to ``revision``, the newest by default (idempotent, safe to
        race); an older one only makes a store as an earlier release left it. ``kek``
        (a ``workbench.kbs.kek.Kek``) authenticates existing rows when the upgrade adds
        row MACs; returns how many rows of each table that upgrade authenticated."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["kek"] = kek
        try:
            with self.write() as conn:
                self.serialize_setup(conn)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except OperationalError as err:
            raise InputError(f"{make_url(self.url).render_as_string(hide_password=True)}: "
                             f"cannot open the store ({err.orig})") from err
        return dict(cfg.attributes.get("authenticated_rows") or {})

    def dispose(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


def open_store(url: str, *, synchronous: str = "NORMAL", migrate: bool = True,
               kek: Any = None) -> Store:
    store = Store(url, synchronous=synchronous)
    if migrate:
        try:
            store.migrate(kek=kek)
        except BaseException:
            store.dispose()
            raise
    return store
