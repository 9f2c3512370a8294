"""The broker's protocol logic, free of HTTP: auth, attest, resource release.

State lives in the store (so replicas behind a load balancer share it); a process keeps a
bounded cache of attested sessions and their appraisals, and a replica that misses the
cache re-verifies the stored evidence as of its attestation time. Every outcome, success
or refusal, is written to the audit log before the answer leaves the broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jwcrypto.jwk import JWK
from sqlalchemy import bindparam, delete, select

from workbench.attestation.appraise import (
    Appraisal,
    EarStatus,
    Policy,
    appraise,
    load_policy,
)
from workbench.attestation.appraise.ear import issue_token
from workbench.attestation.tee.binding import BindingError, binding_matches, report_data_for
from workbench.attestation.verify.result import VerifiedEvidence
from workbench.kbs import audit, release_rules
from workbench.kbs.approvals import APPROVED, DENIED, EXPIRED, PENDING, RETRY_AFTER_S, Approvals
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.config import PROTOCOL_VERSION, BrokerConfig
from workbench.kbs.errors import KbsError
from workbench.kbs.evidence import EvidenceVerifier, RawEvidence, decode_tee_evidence, identity
from workbench.kbs.identity import NOBODY, Presented, identity_provider
from workbench.kbs.jwe import BadTeeKey, check_tee_pubkey, encrypt_to
from workbench.kbs.kek import Kek
from workbench.kbs.paths import check_path
from workbench.kbs.protocol import (
    SUPPORTED_TEES,
    TRUSTEE_ONLY_TEES,
    AttestRequest,
    AuthRequest,
    Challenge,
)
from workbench.kbs.registry import Registry, ResourceInfo, parse_policy
from workbench.kbs.store import Store
from workbench.kbs.store.hot import hot
from workbench.kbs.store.schema import sessions

log = logging.getLogger("workbench.kbs")

NONCE_BYTES = 32
MAX_NAMED_RESOURCES = 64
MAX_LOGGED_PATH = 400
CACHE_ENTRIES = 20_000
# Sessions stay in the table this long after expiring (for investigation), then go.
SESSION_RETENTION = timedelta(hours=1)
AUTHED, ATTESTED, FAILED = "authed", "attested", "failed"
# How a client says the analyst confirmed a release: recorded in the audit log, never a
# permission (the kernel asserts it about itself; the data owner's approval is separate).
ANALYST_APPROVAL_MODES = ("interactive", "non-interactive")
# Used for the attest token when the session names no resources and no policy is configured.
DEFAULT_ATTESTATION_POLICY = {
    "id": "kbs-default-attestation",
    "name": "hardware TEE, no debug, up-to-date TCB (token only; releases use each "
            "resource's own policy)",
    "allowed_tee": ["sgx", "tdx", "snp"],
}
_STATUS_ORDER = [EarStatus.NONE, EarStatus.AFFIRMING, EarStatus.WARNING,
                 EarStatus.CONTRAINDICATED]
RELEASE_ATTEMPTS = 2
# The token claim stating the transport key the evidence binds (hex; "" when none).
TRANSPORT_KEY_CLAIM = "workbench.transport-key"
_SELECT_SESSION = select(sessions).where(sessions.c.id == bindparam("sid"))


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def session_ref(session_id: str | None) -> str | None:
    """How the audit log names a session: never the cookie value itself (a credential)."""
    if not session_id:
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def rule_json(appraisal: Appraisal) -> list[dict[str, Any]]:
    return [{"name": r.name, "expected": r.expected, "actual": r.actual, "reason": r.reason}
            for r in appraisal.failed_rules]


@dataclass(frozen=True)
class Challenged:
    """A session between auth and attest (as the row says, or as auth just wrote it)."""

    id: str
    tee: str
    nonce: str
    state: str
    resources: tuple[str, ...]
    expires_at: str


@dataclass
class Session:
    id: str
    tee: str
    resources: tuple[str, ...]
    expires_at: datetime
    tee_pubkey: dict[str, Any]
    tee_key: JWK
    attested_at: datetime
    evidence: VerifiedEvidence
    report_data: bytes


@dataclass(frozen=True)
class Released:
    jwe: dict[str, str]


@dataclass(frozen=True)
class Pending:
    request_id: str
    resource: str
    deadline: str
    retry_after_s: int = RETRY_AFTER_S


class _Lru:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def pop(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class Broker:
    def __init__(self, config: BrokerConfig, store: Store, kek: Kek, key: BrokerKey,
                 verifier: EvidenceVerifier, *, clock: Callable[[], datetime] | None = None
                 ) -> None:
        self.config = config
        self.store = store
        self.key = key
        self._kek = kek
        self._verifier = verifier
        self._clock = clock or (lambda: datetime.now(UTC))
        self.registry = Registry(store, kek, key, clock=self._clock,
                                 default_timeout_s=config.approval_timeout_s)
        self.approvals = Approvals(store, key, clock=self._clock)
        self._sessions = _Lru(CACHE_ENTRIES)
        self._challenges = _Lru(CACHE_ENTRIES)
        self._appraisals = _Lru(CACHE_ENTRIES)
        self._policies = _Lru(1024)
        # Who asks (a hub token, checked at the hub): for the resources' user/group rules.
        self.identities = identity_provider(config.hub_api_url,
                                            cache_s=config.identity_cache_s,
                                            timeout_s=config.identity_timeout_s)
        if config.attestation_policy:
            self._default_policy = load_policy(config.attestation_policy)
        else:
            self._default_policy, _ = parse_policy(DEFAULT_ATTESTATION_POLICY)

    # -- shared helpers -------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def _policy(self, text: str) -> Policy:
        found = self._policies.get(text)
        if found is None:
            found, _ = parse_policy(json.loads(text))
            self._policies.put(text, found)
        return found

    def _audit(self, kind: str, payload: dict[str, Any], now: datetime) -> None:
        with self.store.write() as conn:
            audit.append(conn, self.key, kind, payload, now)

    def startup_record(self, version: str) -> None:
        self._audit("startup", {"kid": self.key.kid, "version": version,
                                "protocol": PROTOCOL_VERSION}, self.now())

    def purge_expired(self) -> int:
        cutoff = stamp(self.now() - SESSION_RETENTION)
        with self.store.write() as conn:
            result = conn.execute(delete(sessions).where(sessions.c.expires_at < cutoff))
        return result.rowcount or 0

    # -- POST /kbs/v0/auth ----------------------------------------------------------------

    def _named_resources(self, extra: Any) -> tuple[str, ...]:
        if not isinstance(extra, dict) or "resources" not in extra:
            return ()
        named = extra["resources"]
        if not isinstance(named, list) or len(named) > MAX_NAMED_RESOURCES:
            raise KbsError("MalformedRequest", "extra-params.resources must be a list of at "
                                               f"most {MAX_NAMED_RESOURCES} resource paths")
        return tuple(dict.fromkeys(check_path(p) for p in named))

    def auth(self, request: AuthRequest) -> tuple[str, Challenge, int]:
        now = self.now()
        try:
            if request.version != PROTOCOL_VERSION:
                raise KbsError("ProtocolVersionMismatch",
                               f"protocol version {request.version!r} is not supported; this "
                               f"broker speaks {PROTOCOL_VERSION}")
            if request.tee not in SUPPORTED_TEES:
                known = "a TEE this broker cannot verify" if request.tee.lower() in \
                    TRUSTEE_ONLY_TEES else "an unknown TEE type"
                raise KbsError("UnsupportedTee",
                               f"tee {request.tee!r} is {known} (supported: "
                               f"{', '.join(SUPPORTED_TEES)})")
            named = self._named_resources(request.extra_params)
        except KbsError as err:
            self._audit("refusal", {"stage": "auth", "problem": err.kind, "reason": err.detail},
                        now)
            raise
        session_id = uuid.uuid4().hex
        nonce = base64.b64encode(os.urandom(NONCE_BYTES)).decode()
        ttl = self.config.nonce_ttl_s
        expires = stamp(now + timedelta(seconds=ttl))
        with self.store.write() as conn:
            hot(conn).run(conn, "session_insert", {
                "id": session_id, "tee": request.tee, "nonce": nonce,
                "resources": json.dumps(list(named)), "created_at": stamp(now),
                "expires_at": expires,
            })
            audit.append(conn, self.key, "auth", {"session": session_ref(session_id),
                                                  "tee": request.tee,
                                                  "resources": list(named)}, now)
        self._challenges.put(session_id, Challenged(session_id, request.tee, nonce, AUTHED,
                                                    named, expires))
        return session_id, Challenge(nonce=nonce, extra_params=""), ttl

    # -- POST /kbs/v0/attest --------------------------------------------------------------

    def _session_row(self, session_id: str | None) -> Any:
        if not session_id:
            raise KbsError("MissingSession", "no kbs-session-id cookie: start with POST "
                                             "/kbs/v0/auth")
        with self.store.read() as conn:
            row = conn.execute(_SELECT_SESSION, {"sid": session_id}).first()
        if row is None:
            raise KbsError("UnknownSession", "session is unknown (never issued, or expired "
                                             "and removed): start with POST /kbs/v0/auth")
        return row

    def _appraisals_for(self, session_id: str, named: tuple[str, ...], evidence:
                        VerifiedEvidence, expected: bytes, at: datetime,
                        presented: Presented = NOBODY) -> tuple[Appraisal, dict[str, Any]]:
        """The token's appraisal (worst over the named resources) and per-resource verdicts
        (which also count the resource's release rules for the requester, if any fail)."""
        verdicts: dict[str, Any] = {}
        worst: Appraisal | None = None
        for path in named:
            try:
                info, _ = self.registry.cached(path)
            except KbsError:
                verdicts[path] = {"status": "unknown-resource"}
                continue
            result = appraise(evidence, self._policy(info.policy_text), now=at,
                              expected_report_data=expected)
            self._appraisals.put((session_id, info.policy_text), result)
            refused = release_rules.failed(info.options, presented)
            verdicts[path] = {"status": EarStatus.CONTRAINDICATED.value if refused
                              else result.status.value, "policy_id": result.policy_id,
                              "failed_rules": [r.name for r in result.failed_rules]
                              + [r["name"] for r in refused]}
            if worst is None or (_STATUS_ORDER.index(result.status)
                                 > _STATUS_ORDER.index(worst.status)):
                worst = result
        if worst is None:
            worst = appraise(evidence, self._default_policy, now=at,
                             expected_report_data=expected)
        return worst, verdicts

    def _check_evidence(self, row: Challenged, request: AttestRequest, now: datetime
                        ) -> tuple[VerifiedEvidence, RawEvidence, bytes, JWK]:
        transport = bytes.fromhex(request.runtime_data.transport_key)
        try:
            tee_key = check_tee_pubkey(request.runtime_data.tee_pubkey)
            expected = report_data_for(row.nonce, request.runtime_data.tee_pubkey, transport)
        except (BadTeeKey, BindingError) as err:
            raise KbsError("InvalidTeePubkey", str(err)) from None
        raw = decode_tee_evidence(request.tee_evidence)
        # verify_evidence returns evidence of exactly the TEE asked for, or raises.
        evidence = self._verifier.verify(raw, tee=SUPPORTED_TEES[row.tee], now=now)
        if not binding_matches(evidence.report_data, expected):
            raise KbsError("BindingMismatch",
                           "evidence report data does not bind this session: it must be "
                           "report_data_for(nonce, tee-pubkey, transport-key) of this "
                           "challenge")
        return evidence, raw, expected, tee_key

    def _spend(self, session_id: str, statement: str, values: dict[str, Any], kind: str,
               payload: dict[str, Any], now: datetime) -> None:
        """Leave the 'authed' state exactly once, and audit it in the same transaction."""
        self._challenges.pop(session_id)
        with self.store.write() as conn:
            spent = hot(conn).run(conn, statement, {"id": session_id, **values}).rowcount == 1
            if spent:
                audit.append(conn, self.key, kind, payload, now)
        if not spent:
            error = KbsError("NonceSpent", "this session's nonce was already used by another "
                                           "attest request (replay?); start again with POST "
                                           "/kbs/v0/auth")
            self._audit("attest", {"session": session_ref(session_id), "verdict": "rejected",
                                   "problem": error.kind, "reason": error.detail}, now)
            raise error

    def _challenged(self, session_id: str | None) -> Challenged:
        cached = self._challenges.get(session_id) if session_id else None
        if cached is not None:
            return cached
        row = self._session_row(session_id)
        return Challenged(row.id, row.tee, row.nonce, row.state,
                          tuple(json.loads(row.resources)), row.expires_at)

    def attest(self, session_id: str | None, request: AttestRequest,
               presented: Presented = NOBODY) -> tuple[str, int]:
        now = self.now()
        ref = session_ref(session_id)
        try:
            if presented.error is not None:
                raise presented.error
            row = self._challenged(session_id)
            if row.state != AUTHED:
                raise KbsError("NonceSpent", "this session's nonce was already used by an "
                                             "earlier attest request (replay?); start again "
                                             "with POST /kbs/v0/auth")
            if row.expires_at <= stamp(now):
                raise KbsError("SessionExpired", f"the challenge expired at {row.expires_at}; "
                                                 "start again with POST /kbs/v0/auth")
            if not hmac.compare_digest(request.runtime_data.nonce.encode(), row.nonce.encode()):
                raise KbsError("NonceMismatch", "runtime-data nonce is not the nonce of this "
                                                "session's challenge")
        except KbsError as err:
            self._audit("attest", {"session": ref, "verdict": "rejected", "problem": err.kind,
                                   "reason": err.detail, **presented.audit()}, now)
            raise
        try:
            evidence, raw, expected, tee_key = self._check_evidence(row, request, now)
        except KbsError as err:
            self._spend(row.id, "session_fail", {}, "attest",
                        {"session": ref, "tee": row.tee, "verdict": "rejected",
                         "problem": err.kind, "reason": err.detail}, now)
            raise
        named = row.resources
        appraisal, verdicts = self._appraisals_for(row.id, named, evidence, expected, now,
                                                   presented)
        pubkey = request.runtime_data.tee_pubkey
        token = issue_token(
            appraisal, evidence, signing_key=self.key.jwk, issuer=self.config.issuer_name,
            nonce=row.nonce, lifetime_s=self.config.token_lifetime_s, now=now,
            extra={"tee-pubkey": pubkey, "workbench.resources": verdicts,
                   TRANSPORT_KEY_CLAIM: request.runtime_data.transport_key},
        )
        ttl = self.config.session_ttl_s
        expires = now + timedelta(seconds=ttl)
        self._spend(
            row.id, "session_attest",
            {"tee_pubkey": json.dumps(pubkey), "evidence": base64.b64encode(raw.data).decode(),
             "evidence_certs": json.dumps([base64.b64encode(c).decode() for c in raw.certs]),
             "attested_at": stamp(now), "expires_at": stamp(expires), "token": token,
             "transport_key": request.runtime_data.transport_key},
            "attest",
            {"session": ref, "verdict": appraisal.status.value,
             "policy_id": appraisal.policy_id,
             "failed_rules": [r.name for r in appraisal.failed_rules],
             "resources": verdicts, "kernel": identity(evidence),
             "transport_key": request.runtime_data.transport_key, **presented.audit()},
            now,
        )
        self._sessions.put(row.id, Session(row.id, row.tee, named, expires, pubkey, tee_key,
                                           now, evidence, expected))
        return token, ttl

    # -- GET /kbs/v0/resource/<repo>/<type>/<tag> -----------------------------------------

    def _attested_session(self, session_id: str | None, now: datetime) -> Session:
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            row = self._session_row(session_id)
            if row.state == FAILED:
                raise KbsError("NotAttested", "this session's attestation failed; start again "
                                              "with POST /kbs/v0/auth")
            if row.state != ATTESTED:
                raise KbsError("NotAttested", "this session has not attested: POST "
                                              "/kbs/v0/attest first")
            attested_at = datetime.fromisoformat(row.attested_at)
            raw = RawEvidence(base64.b64decode(row.evidence),
                              tuple(base64.b64decode(c) for c in json.loads(row.evidence_certs)))
            # Evidence was judged when presented; a replica re-verifies it as of that moment.
            evidence = self._verifier.verify(raw, tee=SUPPORTED_TEES[row.tee], now=attested_at)
            pubkey = json.loads(row.tee_pubkey)
            session = Session(row.id, row.tee, tuple(json.loads(row.resources)),
                              datetime.fromisoformat(row.expires_at), pubkey,
                              check_tee_pubkey(pubkey), attested_at, evidence,
                              report_data_for(row.nonce, pubkey,
                                              bytes.fromhex(row.transport_key or "")))
            self._sessions.put(row.id, session)
        if session.expires_at <= now:
            raise KbsError("SessionExpired", f"the session expired at {stamp(session.expires_at)};"
                                             " attest again")
        return session

    def _appraisal(self, session: Session, info: ResourceInfo) -> Appraisal:
        cached = self._appraisals.get((session.id, info.policy_text))
        if cached is None:
            cached = appraise(session.evidence, self._policy(info.policy_text),
                              now=session.attested_at, expected_report_data=session.report_data)
            self._appraisals.put((session.id, info.policy_text), cached)
        return cached

    def _approval_gate(self, session: Session, info: ResourceInfo, appraisal: Appraisal,
                       now: datetime, presented: Presented) -> str | Pending:
        """The approval id to release under, or Pending; raises on denial or timeout."""
        refusal = None
        with self.store.write() as conn:
            current = self.approvals.latest(conn, session.id, info.path)
            if current is None:
                summary = {"session": session_ref(session.id), "verdict": appraisal.status.value,
                           "policy_id": appraisal.policy_id, "kernel": identity(session.evidence),
                           **presented.audit()}
                created = self.approvals.create(conn, session.id, info.path,
                                                info.approval_timeout_s, summary, now)
                return Pending(created.id, info.path, created.deadline)
            if current.state == PENDING and stamp(now) >= current.deadline:
                self.approvals.expire(conn, current, now)
                refusal = EXPIRED
            elif current.state == PENDING:
                return Pending(current.id, info.path, current.deadline)
            elif current.state == APPROVED:
                return current.id
            else:
                refusal = current.state
        if refusal == DENIED:
            why = f": {current.reason}" if current.reason else ""
            raise KbsError("ApprovalDenied", f"the data owner denied the release of {info.path} "
                                             f"(request {current.id}){why}",
                           request_id=current.id)
        raise KbsError("ApprovalExpired", f"approval request {current.id} for {info.path} timed "
                                          f"out after {info.approval_timeout_s} s without a "
                                          "decision", request_id=current.id)

    def resource(self, session_id: str | None, path: str,
                 analyst: dict[str, str] | None = None,
                 presented: Presented = NOBODY) -> Released | Pending:
        now = self.now()
        ref = session_ref(session_id)
        said = {"analyst_approval": analyst} if analyst is not None else {}
        said.update(presented.audit())
        try:
            if presented.error is not None:
                raise presented.error
            path = check_path(path)
            session = self._attested_session(session_id, now)
            for _ in range(RELEASE_ATTEMPTS):
                outcome = self._release(session, path, ref, now, said, presented)
                if outcome is not None:
                    return outcome
                self.registry.invalidate(path)
            raise KbsError("Conflict", f"resource {path} keeps changing; ask again")
        except KbsError as err:
            self._audit("refusal", {"stage": "resource", "session": ref,
                                    "resource": str(path)[:MAX_LOGGED_PATH],
                                    "problem": err.kind, "reason": err.detail,
                                    "failed_rules": [r["name"] for r in err.failed_rules or []],
                                    **said},
                        now)
            raise

    def _release(self, session: Session, path: str, ref: str | None, now: datetime,
                 said: dict[str, Any], presented: Presented) -> Released | Pending | None:
        """Release under the resource row as cached; None when the row changed meanwhile."""
        key, info = self.registry.key_material(path)
        appraisal = self._appraisal(session, info)
        evidence_failed = rule_json(appraisal)
        requester_failed = release_rules.failed(info.options, presented)
        if evidence_failed or requester_failed:
            parts = []
            if evidence_failed:
                parts.append(f"policy '{appraisal.policy_id}' refuses this kernel for {path}: "
                             + "; ".join(f"{r['name']}: {r['reason']}" for r in evidence_failed))
            if requester_failed:
                parts.append(f"the release options of {path} refuse this requester: "
                             + "; ".join(f"{r['name']}: {r['reason']}"
                                         for r in requester_failed))
            raise KbsError("PolicyDeny", "; ".join(parts),
                           failed_rules=evidence_failed + requester_failed)
        approval = None
        if info.require_approval:
            gate = self._approval_gate(session, info, appraisal, now, presented)
            if isinstance(gate, Pending):
                return gate
            approval = gate
        jwe = encrypt_to(key, session.tee_key, session.tee_pubkey["alg"])
        with self.store.write() as conn:
            if self.registry.stamp(conn, path) != (info.status, info.version, info.updated_at):
                return None
            audit.append(conn, self.key, "release",
                         {"session": ref, "resource": path, "version": info.version,
                          "verdict": appraisal.status.value, "policy_id": appraisal.policy_id,
                          "approval": approval, "kernel": identity(session.evidence), **said},
                         now)
        return Released(jwe)
