"""Authenticated rows: what a release acts on must be what the broker wrote.

Key material is sealed under the KEK, but a release also acts on plain columns: a
resource's policy and release options, an approval's state, an analyst's key and
revocation. Whoever can write the database could swap a policy or flip an approval to
``approved``, and the audit log (which records what the broker did, not what the rows
say) would still verify. So each such row carries ``row_mac``: HMAC-SHA256, under a key
derived from the KEK (HKDF, its own label, so it never equals the AES-GCM key), over the
table's name and the canonical JSON of the columns in ``FIELDS``. The broker computes it
whenever it writes the row and checks it before it acts on the row; a row that does not
authenticate is refused, never repaired silently.

Changing a table's ``FIELDS`` changes every MAC: it needs a new ``VERSION`` and a
migration that re-authenticates the rows (see migration 0006).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Table, select, update

VERSION = 1
_LABEL = b"workbench-kbs row authentication v1"
COLUMN = "row_mac"

# Table -> the columns its MAC covers (every column but the MAC itself), and which of them
# are booleans (SQLite hands those back as 0/1).
FIELDS: dict[str, tuple[str, ...]] = {
    "resources": ("path", "policy", "require_approval", "approval_timeout_s", "status",
                  "version", "key_nonce", "key_sealed", "key_length", "created_at",
                  "updated_at", "users", "groups"),
    "approvals": ("id", "session_id", "resource", "state", "summary", "created_at",
                  "deadline", "decided_at", "reason"),
    "analysts": ("name", "fingerprint", "public_jwk", "groups", "added_at", "revoked_at"),
}
BOOLEANS = frozenset({("resources", "require_approval")})
# Table -> its primary key column.
KEYS = {"resources": "path", "approvals": "id", "analysts": "name"}


def _value(table: str, column: str, value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if (table, column) in BOOLEANS and value is not None:
        return bool(value)
    return value


class RowKey:
    """The MAC key of the store's rows, derived from the KEK."""

    def __init__(self, kek_bytes: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=_LABEL).derive(kek_bytes)

    def mac(self, table: str, row: Mapping[str, Any]) -> str:
        document = {column: _value(table, column, row[column]) for column in FIELDS[table]}
        message = f"{table}\n".encode() + json.dumps(
            document, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def authentic(self, table: str, row: Mapping[str, Any]) -> bool:
        stored = row.get(COLUMN)
        return isinstance(stored, str) and hmac.compare_digest(stored, self.mac(table, row))

    def seal(self, conn: Connection, table: Table, key: str) -> None:
        """Recompute the MAC of ``table``'s row ``key`` as it is now in ``conn``'s
        transaction (after the broker's own insert or update of it)."""
        primary = table.c[KEYS[table.name]]
        row = conn.execute(select(table).where(primary == key)).mappings().first()
        if row is not None:
            conn.execute(update(table).where(primary == key)
                         .values({COLUMN: self.mac(table.name, row)}))


def integrity_rule(what: str) -> dict[str, Any]:
    """The failed rule of a refusal over a row that does not authenticate."""
    return {"name": "row-integrity", "expected": "a row the broker wrote",
            "actual": "a row changed outside the broker",
            "reason": f"{what} does not authenticate under the broker's key-encryption key: "
                      "the database was changed outside the broker"}
