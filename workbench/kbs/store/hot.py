"""The few statements every exchange runs, on the driver's cursor inside SQLAlchemy's
transaction.

Each exchange appends three audit records and writes its session twice; through
SQLAlchemy Core each statement costs about 0.1 ms of Python, through the DB-API cursor a
few microseconds. Transactions, pooling and everything else stay SQLAlchemy's. SQL is
written with ``:name`` parameters (sqlite3's style) and rewritten for drivers that use
``%(name)s`` (psycopg). Table and column names must match ``schema.py``; the tests run
every statement.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection

_PARAM = re.compile(r":([a-z_]+)")
# Parameter style each driver accepts for dict parameters (sqlite3 takes both qmark and
# named; SQLAlchemy reports qmark for it).
DRIVER_PARAMSTYLE = {"pysqlite": "named", "psycopg": "pyformat", "psycopg2": "pyformat"}

# name -> SQL; "{lock}" becomes FOR UPDATE where the database has row locks.
STATEMENTS: dict[str, str] = {
    "audit_head": "SELECT seq, hash FROM audit_head WHERE id = 1{lock}",
    "audit_insert": "INSERT INTO audit_log (seq, time, kind, payload, prev_hash, hash, kid, "
                    "signature) VALUES (:seq, :time, :kind, :payload, :prev_hash, :hash, "
                    ":kid, :signature)",
    "audit_head_update": "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1",
    "session_insert": "INSERT INTO sessions (id, tee, nonce, state, resources, created_at, "
                      "expires_at) VALUES (:id, :tee, :nonce, 'authed', :resources, "
                      ":created_at, :expires_at)",
    "session_fail": "UPDATE sessions SET state = 'failed' WHERE id = :id AND state = 'authed'",
    "session_attest": "UPDATE sessions SET state = 'attested', tee_pubkey = :tee_pubkey, "
                      "evidence = :evidence, evidence_certs = :evidence_certs, "
                      "attested_at = :attested_at, expires_at = :expires_at, token = :token, "
                      "transport_key = :transport_key, session_key = :session_key, "
                      "session_certificate = :session_certificate, binding = :binding "
                      "WHERE id = :id AND state = 'authed'",
    "resource_stamp": "SELECT status, version, updated_at FROM resources WHERE path = :path",
}


def _for_dialect(sql: str, paramstyle: str, row_locks: bool) -> str:
    sql = sql.replace("{lock}", " FOR UPDATE" if row_locks else "")
    if paramstyle == "named":
        return sql
    if paramstyle == "pyformat":
        return _PARAM.sub(r"%(\1)s", sql)
    raise ValueError(f"parameter style {paramstyle!r} is not supported")


class Hot:
    """``run(conn, name, params)`` executes one of ``STATEMENTS`` on ``conn``'s cursor."""

    def __init__(self, paramstyle: str, *, row_locks: bool) -> None:
        self._sql = {name: _for_dialect(sql, paramstyle, row_locks)
                     for name, sql in STATEMENTS.items()}

    def run(self, conn: Connection, name: str, params: dict[str, Any] | None = None) -> Any:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(self._sql[name], params or {})
        return cursor


_BY_DIALECT: dict[tuple[str, str], Hot] = {}


def hot(conn: Connection) -> Hot:
    """The statements for ``conn``'s database (built once per dialect)."""
    dialect = conn.dialect
    key = (dialect.name, dialect.driver)
    found = _BY_DIALECT.get(key)
    if found is None:
        style = DRIVER_PARAMSTYLE.get(dialect.driver)
        if style is None:
            raise ValueError(f"database driver {dialect.driver!r} is not supported (use "
                             f"one of {', '.join(DRIVER_PARAMSTYLE)})")
        found = _BY_DIALECT[key] = Hot(style, row_locks=dialect.name != "sqlite")
    return found
