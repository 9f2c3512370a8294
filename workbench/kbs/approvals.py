"""Releases that wait for a human: one request per (session, resource), decided once.

``pending`` becomes ``approved`` or ``denied`` by the data owner, or ``expired`` when its
deadline passes first. Denied and expired are final for that session: asking again needs a
new attestation, so a decision is never silently replaced by a fresh request.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from workbench.kbs import audit
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.errors import KbsError
from workbench.kbs.listing import DEFAULT_PAGE
from workbench.kbs.records import stamp
from workbench.kbs.row_mac import RowKey, integrity_rule
from workbench.kbs.store import Store
from workbench.kbs.store.schema import approvals
from workbench.protocol.errors import ErrorKind

log = logging.getLogger("workbench.kbs")

PENDING, APPROVED, DENIED, EXPIRED = "pending", "approved", "denied", "expired"
# How often a waiting client is told to poll.
RETRY_AFTER_S = 1
MAX_REASON_CHARS = 500
# Requests expired per write transaction when a listing sweeps: keeps the writer lock short
# when thousands were abandoned at once.
EXPIRE_BATCH = 500


@dataclass(frozen=True)
class Approval:
    id: str
    session_ref: str
    resource: str
    state: str
    summary: dict[str, Any]
    created_at: str
    deadline: str
    decided_at: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "state": self.state,
            "kernel": self.summary,
            "created_at": self.created_at,
            "deadline": self.deadline,
            "decided_at": self.decided_at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ApprovalPage:
    """One page of a listing, newest first: ``total`` requests match, ``more`` of them are
    older than this page's last (ask again with ``before`` = its id)."""

    items: list[Approval]
    total: int
    more: int


def _approval(row: Any) -> Approval:
    summary = json.loads(row.summary)
    return Approval(row.id, summary.get("session", ""), row.resource, row.state, summary,
                    row.created_at, row.deadline, row.decided_at, row.reason)


class Approvals:
    def __init__(self, store: Store, key: BrokerKey, *, clock: Callable[[], datetime],
                 row_key: RowKey) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self._rows = row_key

    def _authentic(self, row: Any) -> Approval:
        """The request of ``row``; refused when the row was changed outside the broker
        (a state flipped to approved, a deadline moved)."""
        if not self._rows.authentic("approvals", row._mapping):
            log.error("approval request %s: its row does not authenticate under the KEK "
                      "(changed outside the broker); refused", row.id)
            raise KbsError(ErrorKind.POLICY_DENY,
                           f"approval request {row.id} for {row.resource} does not "
                           "authenticate under the broker's key-encryption key: the database "
                           "was changed outside the broker; it counts for nothing",
                           failed_rules=[integrity_rule(f"approval request {row.id}")],
                           request_id=row.id)
        return _approval(row)

    def latest(self, conn: Connection, session_id: str, resource: str) -> Approval | None:
        row = conn.execute(
            select(approvals)
            .where(approvals.c.session_id == session_id, approvals.c.resource == resource)
            .order_by(approvals.c.created_at.desc())
            .limit(1)
        ).first()
        return self._authentic(row) if row else None

    def create(self, conn: Connection, session_id: str, resource: str, timeout_s: int,
               summary: dict[str, Any], now: datetime) -> Approval:
        request_id = "req-" + secrets.token_hex(8)
        deadline = now + timedelta(seconds=timeout_s)
        conn.execute(insert(approvals).values(
            id=request_id, session_id=session_id, resource=resource, state=PENDING,
            summary=json.dumps(summary, sort_keys=True), created_at=stamp(now),
            deadline=stamp(deadline),
        ))
        self._rows.seal(conn, approvals, request_id)
        audit.append(conn, self._key, "pending",
                     {"request": request_id, "resource": resource, "deadline": stamp(deadline),
                      **summary}, now)
        return Approval(request_id, summary.get("session", ""), resource, PENDING, summary,
                        stamp(now), stamp(deadline), None, None)

    def expire(self, conn: Connection, approval: Approval, now: datetime) -> None:
        # Only a request still pending: a sweep may race a decision or a poll.
        done = conn.execute(update(approvals)
                            .where(approvals.c.id == approval.id,
                                   approvals.c.state == PENDING)
                            .values(state=EXPIRED, decided_at=stamp(now), reason="timed out"))
        if done.rowcount:
            self._rows.seal(conn, approvals, approval.id)
            audit.append(conn, self._key, "expiry",
                         {"request": approval.id, "resource": approval.resource,
                          "deadline": approval.deadline}, now)

    def expire_due(self, now: datetime) -> int:
        """Expire every pending request whose deadline has passed (each audited as when its
        own kernel polls), so no listing shows a request nobody can decide any more."""
        due = select(approvals).where(approvals.c.state == PENDING,
                                      approvals.c.deadline <= stamp(now)) \
            .order_by(approvals.c.deadline).limit(EXPIRE_BATCH)
        expired = 0
        while True:
            with self._store.read() as conn:
                if conn.execute(due.with_only_columns(approvals.c.id)).first() is None:
                    return expired
            done = 0
            with self._store.write() as conn:
                rows = list(conn.execute(due))
                for row in rows:
                    if self._rows.authentic("approvals", row._mapping):
                        self.expire(conn, _approval(row), now)
                        done += 1
                    else:  # left as found, for the owner to look at; never re-authenticated
                        log.error("approval request %s: its row does not authenticate under "
                                  "the KEK (changed outside the broker); not expired", row.id)
            expired += done
            if len(rows) < EXPIRE_BATCH or not done:
                return expired

    def decide(self, request_id: str, *, approve: bool, reason: str) -> Approval:
        if len(reason) > MAX_REASON_CHARS:
            raise KbsError(ErrorKind.MALFORMED_REQUEST, f"reason is longer than {MAX_REASON_CHARS} "
                                               "characters")
        now = self._clock()
        timed_out = None
        with self._store.write() as conn:
            row = conn.execute(select(approvals).where(approvals.c.id == request_id)).first()
            if row is None:
                raise KbsError(
                    ErrorKind.APPROVAL_NOT_FOUND,
                    f"approval request {request_id} not found")
            try:
                current = self._authentic(row)
            except KbsError as err:
                raise KbsError(ErrorKind.CONFLICT, f"{err.detail}; it cannot be decided") \
                    from None
            if current.state != PENDING:
                raise KbsError(ErrorKind.CONFLICT, f"approval request {request_id} is already "
                                           f"{current.state}")
            if stamp(now) >= current.deadline:
                self.expire(conn, current, now)
                timed_out = current
            else:
                state = APPROVED if approve else DENIED
                conn.execute(update(approvals).where(approvals.c.id == request_id)
                             .values(state=state, decided_at=stamp(now), reason=reason))
                self._rows.seal(conn, approvals, request_id)
                audit.append(conn, self._key, "approval" if approve else "denial",
                             {"request": request_id, "resource": current.resource,
                              "reason": reason, "by": "admin"}, now)
        if timed_out is not None:
            raise KbsError(ErrorKind.CONFLICT, f"approval request {request_id} timed out at "
                                       f"{timed_out.deadline}; it can no longer be decided")
        return self.get(request_id)

    def get(self, request_id: str) -> Approval:
        with self._store.read() as conn:
            row = conn.execute(select(approvals).where(approvals.c.id == request_id)).first()
        if row is None:
            raise KbsError(ErrorKind.APPROVAL_NOT_FOUND, f"approval request {request_id} not found")
        return _approval(row)

    def list(self, state: str | None = PENDING, limit: int = DEFAULT_PAGE,
             before: str | None = None) -> ApprovalPage:
        """Requests in ``state`` (None: all), newest first, ``limit`` of them, older than
        request ``before`` if given; requests past their deadline are expired first."""
        self.expire_due(self._clock())
        matching = [approvals.c.state == state] if state else []
        with self._store.read() as conn:
            total = conn.execute(select(func.count()).select_from(approvals)
                                 .where(*matching)).scalar_one()
            older = list(matching)
            if before is not None:
                cursor = conn.execute(select(approvals.c.created_at, approvals.c.id)
                                      .where(approvals.c.id == before)).first()
                if cursor is None:
                    raise KbsError(ErrorKind.APPROVAL_NOT_FOUND,
                                   f"approval request {before} not found (before=)")
                older.append(_older_than(*cursor))
            rows = [_approval(r) for r in conn.execute(
                select(approvals).where(*older)
                .order_by(approvals.c.created_at.desc(), approvals.c.id.desc()).limit(limit))]
            more = 0
            if len(rows) == limit:
                last = rows[-1]
                more = conn.execute(select(func.count()).select_from(approvals).where(
                    *matching, _older_than(last.created_at, last.id))).scalar_one()
        return ApprovalPage(rows, total, more)


def _older_than(created_at: str, request_id: str) -> Any:
    """Rows after (created_at, id) in newest-first order."""
    return or_(approvals.c.created_at < created_at,
               and_(approvals.c.created_at == created_at, approvals.c.id < request_id))
