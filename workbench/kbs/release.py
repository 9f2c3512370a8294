"""GET /kbs/v0/resource/<repo>/<type>/<tag>: a key, released as JWE to an attested kernel.

A release needs the resource's policy to accept the session's evidence, its release rules
to accept the requester, and, where the data owner asks for it, their approval. The key is
encrypted to the session's tee-pubkey and the release record is committed before the answer
leaves; if the resource changed meanwhile (another replica, an admin), the release is tried
again on the row as it is now. Every refusal is audited with its reason.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.attestation.appraise import Appraisal
from workbench.kbs import audit, release_rules
from workbench.kbs.analyst_rules import analyst_failed, signed_approval, standing
from workbench.kbs.analysts import REGISTERED, Analysts, Standing, certifier_fingerprint
from workbench.kbs.appraisal import Appraiser, rule_json
from workbench.kbs.approvals import (
    APPROVED,
    DENIED,
    EXPIRED,
    PENDING,
    RETRY_AFTER_S,
    Approval,
    Approvals,
)
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.errors import KbsError
from workbench.kbs.evidence import identity
from workbench.kbs.identity import NOBODY, Presented
from workbench.kbs.jwe import encrypt_to
from workbench.kbs.kek import Sealed
from workbench.kbs.paths import check_path
from workbench.kbs.records import Session
from workbench.kbs.registry import Registry, ResourceInfo
from workbench.kbs.sessions import Sessions, session_ref, stamp
from workbench.kbs.store import Store
from workbench.protocol.errors import ErrorKind
from workbench.sealed.keys import sealed_fingerprint

MAX_LOGGED_PATH = 400
# A release re-reads a resource that changed under it once; a second change is a conflict.
RELEASE_ATTEMPTS = 2
# How a client says the analyst confirmed a release: recorded in the audit log, never a
# permission (the kernel asserts it about itself; the data owner's approval is separate).
# ``sealed``: the confirmation reached the locked kernel sealed under its session, so it
# came from the frontend holding the session key; ``by`` is that session's fingerprint.
SEALED = "sealed"
ANALYST_APPROVAL_MODES = ("interactive", "non-interactive", SEALED)
# What an unsealed confirmation may say it came from: a fixed vocabulary, not free text a
# sender chose (a sealed one is named by its session's fingerprint).
APPROVAL_SOURCES = ("frontend", "approve=True", "WORKBENCH_AUTO_APPROVE=1")


@dataclass(frozen=True)
class Released:
    jwe: dict[str, str]


@dataclass(frozen=True)
class Pending:
    request_id: str
    resource: str
    deadline: str
    retry_after_s: int = RETRY_AFTER_S


def _denied(request: Approval, info: ResourceInfo) -> KbsError:
    why = f": {request.reason}" if request.reason else ""
    return KbsError(ErrorKind.APPROVAL_DENIED,
                    f"the data owner denied the release of {info.path} (request "
                    f"{request.id}){why}", request_id=request.id)


def _expired(request: Approval, info: ResourceInfo) -> KbsError:
    return KbsError(ErrorKind.APPROVAL_EXPIRED,
                    f"approval request {request.id} for {info.path} timed out after "
                    f"{info.approval_timeout_s} s without a decision", request_id=request.id)


# The refusal for a request decided against the release; any other final state counts as
# expired (a request that never became approved in time).
_REFUSALS = {DENIED: _denied, EXPIRED: _expired}


def _policy_deny(path: str, appraisal: Appraisal, evidence_failed: list[dict[str, Any]],
                 requester_failed: list[dict[str, Any]]) -> KbsError:
    parts = []
    if evidence_failed:
        parts.append(f"policy '{appraisal.policy_id}' refuses this kernel for {path}: "
                     + "; ".join(f"{r['name']}: {r['reason']}" for r in evidence_failed))
    if requester_failed:
        parts.append(f"the release options of {path} refuse this requester: "
                     + "; ".join(f"{r['name']}: {r['reason']}" for r in requester_failed))
    return KbsError(ErrorKind.POLICY_DENY, "; ".join(parts),
                    failed_rules=evidence_failed + requester_failed)


def sealed_approval(session: Session, fingerprint: str) -> dict[str, str]:
    """The audit form of a sealed approval; refused unless it names this session's seal."""
    bound = None
    if not session.session_key:
        reason = "a sealed approval came from a kernel whose evidence binds no sealed session"
    else:
        try:
            bound = sealed_fingerprint(session.session_key, session.tee_pubkey)
        except ValueError as err:
            # Attest refuses such keys now; a session stored by an older broker may not.
            reason = (f"the session's keys (tee-pubkey, session-key) are not both P-256, so "
                      f"no sealed approval can name its session: {err}")
    if bound is not None:
        if hmac.compare_digest(fingerprint.encode(), bound.encode()):
            return {"mode": SEALED, "session": bound}
        reason = (f"the sealed approval names another session ({fingerprint[:16]!r}) than the "
                  f"one this kernel's evidence binds ({bound[:16]})")
    raise KbsError(ErrorKind.POLICY_DENY, reason, failed_rules=[
        {"name": "sealed-approval", "expected": "the session the evidence binds",
         "actual": fingerprint[:64], "reason": reason}])


def _sealed_approval_rule(approval: dict[str, str] | None) -> list[dict[str, Any]]:
    if approval is not None and approval.get("mode") == SEALED:
        return []
    actual = approval.get("mode", "none") if approval else "none"
    return [{"name": "sealed-approval", "expected": "the analyst's approval, sealed",
             "actual": actual,
             "reason": "the policy requires a sealed session (sealed_session: required): the "
                       "analyst's approval counts only when it reached the kernel sealed "
                       f"under the session its evidence binds, and this one is {actual}"}]


def _signer(session: Session, analyst: dict[str, str], certifier: Standing,
            unsigned: str | None) -> dict[str, Any]:
    """Who signed a sealed approval, for the audit record (not whether it counts)."""
    if session.certificate is None:
        return {}
    if unsigned is not None:
        return {"signed": False}
    return {"signed": True, "request": analyst.get("request", ""),
            "analyst": certifier.analyst.name
            if certifier.standing == REGISTERED and certifier.analyst else None,
            "analyst_key": certifier_fingerprint(session.certificate)}


class Releases:
    def __init__(self, store: Store, key: BrokerKey, registry: Registry, approvals: Approvals,
                 sessions: Sessions, appraiser: Appraiser, analysts: Analysts) -> None:
        self._analysts = analysts
        self._store = store
        self._key = key
        self._registry = registry
        self._approvals = approvals
        self._sessions = sessions
        self._appraiser = appraiser

    def resource(self, session_id: str | None, path: str, now: datetime,
                 analyst: dict[str, str] | None = None,
                 presented: Presented = NOBODY) -> Released | Pending:
        ref = session_ref(session_id)
        said: dict[str, Any] = {"analyst_approval": {k: v for k, v in analyst.items()
                                                     if k in ("mode", "by")}} if analyst else {}
        said.update(presented.audit())
        try:
            if presented.error is not None:
                raise presented.error
            path = check_path(path)
            session = self._sessions.attested(session_id, now)
            # Judged once per request (a table read and signature checks), then used by the
            # audit record and by every attempt below.
            certifier = standing(session, self._analysts)
            unsigned = signed_approval(session, path, analyst)
            if analyst is not None and analyst.get("mode") == SEALED:
                # Recorded as the session the broker itself bound, not as text a sender chose.
                said["analyst_approval"] = sealed_approval(session, analyst.get("by", ""))
                said["analyst_approval"].update(_signer(session, analyst, certifier, unsigned))
            for _ in range(RELEASE_ATTEMPTS):
                outcome = self._release(session, path, ref, now, said, presented, certifier,
                                        unsigned)
                if outcome is not None:
                    return outcome
                self._registry.invalidate(path)
            raise KbsError(ErrorKind.CONFLICT, f"resource {path} keeps changing; ask again")
        except KbsError as err:
            audit.record(self._store, self._key, "refusal",
                         {"stage": "resource", "session": ref,
                          "resource": str(path)[:MAX_LOGGED_PATH],
                          "problem": err.kind, "reason": err.detail,
                          "failed_rules": [r["name"] for r in err.failed_rules or []],
                          **said},
                         now)
            raise

    def _approval_gate(self, session: Session, info: ResourceInfo, appraisal: Appraisal,
                       now: datetime, presented: Presented) -> str | Pending | None:
        """The approval id to release under, or Pending; raises on denial or timeout;
        None when ``info`` is stale (the owner may have switched approval off, or changed
        the policy the request would be judged under)."""
        with self._store.write() as conn:
            if not self._registry.is_current(info, conn):
                return None
            current = self._approvals.latest(conn, session.id, info.path)
            if current is None:
                summary = {"session": session_ref(session.id), "verdict": appraisal.status.value,
                           "policy_id": appraisal.policy_id, "kernel": identity(session.evidence),
                           **presented.audit()}
                created = self._approvals.create(conn, session.id, info.path,
                                                 info.approval_timeout_s, summary, now)
                return Pending(created.id, info.path, created.deadline)
            if current.state == PENDING and stamp(now) >= current.deadline:
                self._approvals.expire(conn, current, now)
                state = EXPIRED
            elif current.state == PENDING:
                return Pending(current.id, info.path, current.deadline)
            elif current.state == APPROVED:
                return current.id
            else:
                state = current.state
        # Raised once the transaction committed, so an expiry just noticed is recorded.
        raise _REFUSALS.get(state, _expired)(current, info)

    def _release(self, session: Session, path: str, ref: str | None, now: datetime,
                 said: dict[str, Any], presented: Presented, certifier: Standing,
                 unsigned: str | None) -> Released | Pending | None:
        """Release under the resource row as cached; None when the row changed meanwhile."""
        info, sealed = self._registry.cached(path)
        try:
            decided = self._decide(session, info, sealed, now, said, presented, certifier,
                                   unsigned)
        except KbsError:
            # A refusal, too, must rest on the row as it is now: another process or replica
            # may have changed the policy since this one cached it.
            if not self._registry.is_current(info):
                return None
            raise
        if decided is None or isinstance(decided, Pending):
            return decided
        key, appraisal, approval = decided
        jwe = encrypt_to(key, session.tee_key, session.tee_pubkey["alg"])
        with self._store.write() as conn:
            if not self._registry.is_current(info, conn):
                return None
            audit.append(conn, self._key, "release",
                         {"session": ref, "resource": path, "version": info.version,
                          "verdict": appraisal.status.value, "policy_id": appraisal.policy_id,
                          "approval": approval, "kernel": identity(session.evidence), **said},
                         now)
        return Released(jwe)

    def _decide(self, session: Session, info: ResourceInfo, sealed: Sealed | None,
                now: datetime, said: dict[str, Any], presented: Presented,
                certifier: Standing, unsigned: str | None
                ) -> tuple[bytes, Appraisal, str | None] | Pending | None:
        """Judge a release under ``info``: the key, the appraisal and the approval id to
        release under, or Pending; raises the refusal; None when ``info`` proved stale."""
        path = info.path
        key = self._registry.key_material(info, sealed)
        appraisal = self._appraiser.for_release(session, info)
        evidence_failed = rule_json(appraisal)
        requester_failed = release_rules.failed(info.options, presented)
        if evidence_failed or requester_failed:
            raise _policy_deny(path, appraisal, evidence_failed, requester_failed)
        policy = self._appraiser.policy(info.policy_text)
        if policy.names_analysts:
            # Who certified the session, as the analyst table says now (revocations count).
            restricted = analyst_failed(policy, certifier)
            if unsigned and not restricted:
                restricted = [{"name": "signed-approval", "expected": "the analyst's approval, "
                               "signed by the certified session", "actual": "unsigned",
                               "reason": f"releases of {path} need the analyst's signed "
                                         f"approval: {unsigned}"}]
            if restricted:
                raise KbsError(ErrorKind.POLICY_DENY, f"policy '{policy.id}' refuses this "
                               f"session for {path}: {restricted[0]['reason']}",
                               failed_rules=restricted)
        if policy.sealed_session == "required":
            # The evidence binds a session (the sealed-session rule passed): the approval
            # must have come through it too.
            unsealed = _sealed_approval_rule(said.get("analyst_approval"))
            if unsealed:
                raise KbsError(ErrorKind.POLICY_DENY, unsealed[0]["reason"],
                               failed_rules=unsealed)
        approval = None
        if info.require_approval:
            gate = self._approval_gate(session, info, appraisal, now, presented)
            if gate is None or isinstance(gate, Pending):
                return gate
            approval = gate
        return key, appraisal, approval
