"""The append-only audit log: a hash chain of records, each signed by the broker key.

A record's signed message is ``seq \\n time \\n kind \\n prev_hash \\n payload`` (payload
last, as canonical JSON), its ``hash`` is SHA-256 of that message, and the next record
carries it as ``prev_hash``. Editing a record breaks its signature, deleting one breaks the
sequence and the chain, reordering breaks both; the ``audit_head`` row names the last
record, so dropping the tail shows up as a head that points past the end. An appender
holds the head row locked (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on
PostgreSQL) from reading it until commit, so concurrent appends cannot fork the chain.

Whoever can write the database can also rewrite the head row, re-sign with a key of their
own and insert that key: so verification takes the broker's keys from outside the database
(:mod:`workbench.kbs.audit_keys`) and compares the chain with anchors, signed checkpoints
kept elsewhere (:mod:`workbench.kbs.checkpoint`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, select

from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.store import Store
from workbench.kbs.store.engine import note_after_commit
from workbench.kbs.store.hot import hot
from workbench.kbs.store.schema import audit_head, audit_log

GENESIS_HASH = "0" * 64
HEAD_ID = 1

# Record kinds and what their payload says.
KINDS: dict[str, str] = {
    "auth": "a challenge was issued (session, tee)",
    "attest": "evidence was checked: verdict, failed rules",
    "release": "a resource was released as JWE to an attested key",
    "refusal": "a request was refused: reason, failed rules",
    "pending": "a release now waits for a human decision",
    "approval": "the data owner approved a pending release",
    "denial": "the data owner denied a pending release",
    "expiry": "a pending release timed out",
    "admin": "an administrative change (resource, policy)",
    "startup": "the broker started (key id, version)",
}


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def message(seq: int, time: str, kind: str, prev_hash: str, payload: str) -> bytes:
    return f"{seq}\n{time}\n{kind}\n{prev_hash}\n{payload}".encode()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    kind: str
    payload: str
    prev_hash: str
    hash: str
    kid: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "payload": json.loads(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "kid": self.kid,
            "signature": self.signature,
        }


def append(conn: Connection, key: BrokerKey, kind: str, payload: dict[str, Any],
           now: datetime) -> AuditRecord:
    """Append one record inside the caller's write transaction (committed with it)."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit record kind {kind!r}")
    statements = hot(conn)
    head_seq, head_hash = statements.run(conn, "audit_head").fetchone()
    seq = head_seq + 1
    time = now.isoformat(timespec="microseconds")
    body = canonical(payload)
    msg = message(seq, time, kind, head_hash, body)
    digest = hashlib.sha256(msg).hexdigest()
    signature = base64.b64encode(key.private_key.sign(msg, ec.ECDSA(hashes.SHA256()))).decode()
    record = AuditRecord(seq, time, kind, body, head_hash, digest, key.kid, signature)
    statements.run(conn, "audit_insert", {
        "seq": seq, "time": time, "kind": kind, "payload": body, "prev_hash": head_hash,
        "hash": digest, "kid": key.kid, "signature": signature,
    })
    statements.run(conn, "audit_head_update", {"seq": seq, "hash": digest})
    # The witness hears of it only once it is committed (a rollback un-happens it).
    note_after_commit(conn, record)
    return record


def record(store: Store, key: BrokerKey, kind: str, payload: dict[str, Any],
           now: datetime) -> AuditRecord:
    """Append one record in a write transaction of its own (a refusal, a startup)."""
    with store.write() as conn:
        return append(conn, key, kind, payload, now)


@dataclass(frozen=True)
class Anchor:
    """What a verified checkpoint says, kept outside the database: record ``seq`` had
    ``hash`` (and, the chain being a chain, everything before it was as it is now)."""
    seq: int
    hash: str
    # Names the checkpoint in reasons, e.g. "checkpoint cp.json (seq 12, time ...)".
    source: str


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    reason: str = ""
    keys: int = 0
    anchors: int = 0

    def describe(self) -> str:
        if self.ok:
            anchored = f"; {self.anchors} checkpoint(s) agree" if self.anchors else ""
            return (f"audit log intact: {self.records} records, chain and signatures verify "
                    f"against {self.keys} broker key(s){anchored}; "
                    f"head {self.head_seq} {self.head_hash}")
        return f"audit log broken at record {self.bad_seq}: {self.reason}"


def _check_record(row: Any, expected_seq: int, prev_hash: str,
                  keys: dict[str, ec.EllipticCurvePublicKey]) -> str | None:
    """Why ``row`` does not continue the chain, or None when it does."""
    # Rows arrive ordered by their unique seq, so a mismatch can only be a gap.
    if row.seq != expected_seq:
        return (f"record {expected_seq} is missing (sequence jumps from "
                f"{expected_seq - 1} to {row.seq}): deleted")
    msg = message(row.seq, row.time, row.kind, row.prev_hash, row.payload)
    if row.prev_hash != prev_hash:
        return "its prev_hash does not match the hash of the record before it"
    if hashlib.sha256(msg).hexdigest() != row.hash:
        return "its hash does not match its content: the record was altered"
    key = keys.get(row.kid)
    if key is None:
        return (f"it is signed by key {row.kid}, which is not one of the broker's keys: "
                "the log was re-signed by someone else")
    try:
        key.verify(base64.b64decode(row.signature, validate=True), msg,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return "its signature does not verify: the record was altered"
    return None


def _contradiction(row: Any, anchors: Sequence[Anchor]) -> str | None:
    for anchor in anchors:
        if anchor.hash != row.hash:
            return (f"it was rewritten: {anchor.source} says its hash is {anchor.hash}, "
                    f"the log's record {row.seq} has {row.hash}")
    return None


def verify_rows(rows: Iterable[Any], head: Any, keys: dict[str, ec.EllipticCurvePublicKey],
                anchors: Sequence[Anchor] = ()) -> ChainVerdict:
    """Check ``rows`` (ordered by seq) against each other, the broker's ``keys`` (taken
    from outside the database), the head and the ``anchors``; name the first bad record."""
    by_seq: dict[int, list[Anchor]] = {}
    for anchor in sorted(anchors, key=lambda a: a.seq):
        by_seq.setdefault(anchor.seq, []).append(anchor)
    prev_hash = GENESIS_HASH
    count = 0

    def broken(bad: int, reason: str) -> ChainVerdict:
        return ChainVerdict(False, count, head.seq, head.hash, bad, reason, len(keys),
                            len(anchors))

    for row in rows:
        count += 1
        expected = count
        reason = _check_record(row, expected, prev_hash, keys)
        if reason:
            count -= 1
            return broken(expected if "missing" in reason else row.seq, reason)
        reason = _contradiction(row, by_seq.get(row.seq, ()))
        if reason:
            count -= 1
            return broken(row.seq, reason)
        prev_hash = row.hash
    if head.seq != count:
        if head.seq > count:
            return broken(count + 1, f"the head names record {head.seq} but the log ends "
                                     f"at {count}: records were deleted from the end")
        return broken(head.seq + 1, f"records after the head ({head.seq}) were added "
                                    "outside the broker")
    if head.hash != prev_hash:
        return broken(count, "the head's hash does not match the last record")
    beyond = [a for a in sorted(anchors, key=lambda a: a.seq) if a.seq > count]
    if beyond:
        first = beyond[0]
        return broken(count + 1, f"the log ends at {count} but {first.source} says record "
                                 f"{first.seq} existed: records were cut from the end")
    return ChainVerdict(True, count, head.seq, head.hash, keys=len(keys),
                        anchors=len(anchors))


def read_head(conn: Connection) -> Any:
    return conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                        .where(audit_head.c.id == HEAD_ID)).one()


def verify_chain(conn: Connection, keys: dict[str, ec.EllipticCurvePublicKey],
                 anchors: Sequence[Anchor] = ()) -> ChainVerdict:
    rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).yield_per(1000)
    return verify_rows(rows, read_head(conn), keys, anchors)


def records(conn: Connection, *, after: int = 0, limit: int = 100,
            kind: str | None = None) -> list[AuditRecord]:
    query = select(audit_log).where(audit_log.c.seq > after)
    if kind:
        query = query.where(audit_log.c.kind == kind)
    rows = conn.execute(query.order_by(audit_log.c.seq).limit(limit))
    return [AuditRecord(r.seq, r.time, r.kind, r.payload, r.prev_hash, r.hash, r.kid,
                        r.signature) for r in rows]
