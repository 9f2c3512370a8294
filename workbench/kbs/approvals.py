"""Releases that wait for a human: one request per (session, resource), decided once.

``pending`` becomes ``approved`` or ``denied`` by the data owner, or ``expired`` when its
deadline passes first. Denied and expired are final for that session: asking again needs a
new attestation, so a decision is never silently replaced by a fresh request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from workbench.kbs import audit
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.errors import KbsError
from workbench.kbs.records import stamp
from workbench.kbs.store import Store
from workbench.kbs.store.schema import approvals
from workbench.protocol.errors import ErrorKind

PENDING, APPROVED, DENIED, EXPIRED = "pending", "approved", "denied", "expired"
# How often a waiting client is told to poll.
RETRY_AFTER_S = 1
MAX_REASON_CHARS = 500


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


def _approval(row: Any) -> Approval:
    summary = json.loads(row.summary)
    return Approval(row.id, summary.get("session", ""), row.resource, row.state, summary,
                    row.created_at, row.deadline, row.decided_at, row.reason)


class Approvals:
    def __init__(self, store: Store, key: BrokerKey, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._key = key
        self._clock = clock

    def latest(self, conn: Connection, session_id: str, resource: str) -> Approval | None:
        row = conn.execute(
            select(approvals)
            .where(approvals.c.session_id == session_id, approvals.c.resource == resource)
            .order_by(approvals.c.created_at.desc())
            .limit(1)
        ).first()
        return _approval(row) if row else None

    def create(self, conn: Connection, session_id: str, resource: str, timeout_s: int,
               summary: dict[str, Any], now: datetime) -> Approval:
        request_id = "req-" + secrets.token_hex(8)
        deadline = now + timedelta(seconds=timeout_s)
        conn.execute(insert(approvals).values(
            id=request_id, session_id=session_id, resource=resource, state=PENDING,
            summary=json.dumps(summary, sort_keys=True), created_at=stamp(now),
            deadline=stamp(deadline),
        ))
        audit.append(conn, self._key, "pending",
                     {"request": request_id, "resource": resource, "deadline": stamp(deadline),
                      **summary}, now)
        return Approval(request_id, summary.get("session", ""), resource, PENDING, summary,
                        stamp(now), stamp(deadline), None, None)

    def expire(self, conn: Connection, approval: Approval, now: datetime) -> None:
        conn.execute(update(approvals).where(approvals.c.id == approval.id)
                     .values(state=EXPIRED, decided_at=stamp(now), reason="timed out"))
        audit.append(conn, self._key, "expiry",
                     {"request": approval.id, "resource": approval.resource,
                      "deadline": approval.deadline}, now)

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
            current = _approval(row)
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

    def list(self, state: str | None = PENDING, limit: int = 200) -> list[Approval]:
        query = select(approvals).order_by(approvals.c.created_at).limit(limit)
        if state:
            query = query.where(approvals.c.state == state)
        with self._store.read() as conn:
            return [_approval(r) for r in conn.execute(query)]
