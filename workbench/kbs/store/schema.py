"""Tables of the broker's store (SQLAlchemy Core). Alembic migrations create them.

Times are ISO-8601 UTC strings (sortable, identical on SQLite and PostgreSQL); secrets are
AES-GCM ciphertext under the KEK (see :mod:`workbench.kbs.kek`).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Key/value facts about the store itself (e.g. the KEK check value).
meta = Table(
    "kbs_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

broker_keys = Table(
    "broker_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("public_jwk", Text, nullable=False),
    Column("private_nonce", LargeBinary, nullable=False),
    Column("private_sealed", LargeBinary, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("active", Boolean, nullable=False),
)

resources = Table(
    "resources",
    metadata,
    Column("path", String(400), primary_key=True),
    Column("policy", Text, nullable=False),
    Column("require_approval", Boolean, nullable=False),
    Column("approval_timeout_s", Integer, nullable=False),
    # "active" or "revoked"; a revoked resource has no key material left.
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key_nonce", LargeBinary, nullable=True),
    Column("key_sealed", LargeBinary, nullable=True),
    Column("key_length", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    # JSON lists of user / group names a release is restricted to; NULL: no restriction.
    Column("users", Text, nullable=True),
    Column("groups", Text, nullable=True),
    # HMAC of the row under a key derived from the KEK (workbench.kbs.row_mac).
    Column("row_mac", String(64), nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tee", String(32), nullable=False),
    Column("nonce", String(128), nullable=False),
    # "authed" -> "attested" | "failed"; the nonce is spent on leaving "authed".
    Column("state", String(16), nullable=False),
    Column("resources", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False, index=True),
    Column("tee_pubkey", Text, nullable=True),
    Column("evidence", Text, nullable=True),
    Column("evidence_certs", Text, nullable=True),
    Column("attested_at", String(40), nullable=True),
    Column("token", Text, nullable=True),
    # Hex of the kernel's CurveZMQ public key bound in the evidence ("" when none).
    Column("transport_key", Text, nullable=True),
    # Hex of the sealed-session key bound in the evidence ("" when none).
    Column("session_key", Text, nullable=True),
    # JSON of the analyst's certificate of that session (null: not certified).
    Column("session_certificate", Text, nullable=True),
    # How the evidence binds runtime-data when not the workbench's report_data_for:
    # JSON {"scheme", "additional-evidence"} (kbs.runtime_binding); null: report_data_for.
    Column("binding", Text, nullable=True),
)

# Analysts the data owner registered: their long-term public keys, groups, revocation.
analysts = Table(
    "analysts",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("fingerprint", String(80), nullable=False, unique=True),
    Column("public_jwk", Text, nullable=False),
    Column("groups", Text, nullable=False),
    Column("added_at", String(40), nullable=False),
    Column("revoked_at", String(40), nullable=True),
    Column("row_mac", String(64), nullable=True),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("resource", String(400), nullable=False),
    # "pending" -> "approved" | "denied" | "expired"
    Column("state", String(16), nullable=False, index=True),
    Column("summary", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("deadline", String(40), nullable=False),
    Column("decided_at", String(40), nullable=True),
    Column("reason", Text, nullable=True),
    Column("row_mac", String(64), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("kid", String(64), nullable=False),
    Column("signature", Text, nullable=False),
)

# One row (id = 1): the chain head. Appends lock it, so concurrent writers serialise.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)
