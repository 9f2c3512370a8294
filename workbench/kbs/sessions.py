"""Sessions: POST /kbs/v0/auth (a nonce), POST /kbs/v0/attest (evidence bound to it, a
token), and loading an attested session for a release.

A session row moves from ``authed`` to ``attested`` or ``failed`` exactly once (the nonce
is spent in the same transaction as its audit record). A process caches the challenges it
issued and the sessions it attested; a replica that misses the cache reads the row and
re-verifies the stored evidence as of its attestation time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

from jwcrypto.jwk import JWK
from sqlalchemy import bindparam, delete, select

from workbench.attestation.appraise.ear import issue_token
from workbench.attestation.tee.binding import BindingError, report_data_for
from workbench.attestation.verify.result import VerifiedEvidence
from workbench.kbs import audit, runtime_binding
from workbench.kbs.analysts import Analysts
from workbench.kbs.appraisal import Appraiser
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.caches import BrokerCaches
from workbench.kbs.config import BrokerConfig
from workbench.kbs.errors import KbsError
from workbench.kbs.evidence import EvidenceVerifier, RawEvidence, decode_tee_evidence, identity
from workbench.kbs.identity import NOBODY, Presented
from workbench.kbs.jwe import BadTeeKey, check_tee_pubkey
from workbench.kbs.paths import check_path
from workbench.kbs.records import Challenged, Session, stamp
from workbench.kbs.sealed_inputs import check_sealed_inputs
from workbench.kbs.store import Store
from workbench.kbs.store.hot import hot
from workbench.kbs.store.schema import sessions
from workbench.protocol.claims import (
    ANALYST_CLAIM,
    RESOURCES_CLAIM,
    SESSION_KEY_CLAIM,
    TEE_PUBKEY_CLAIM,
    TRANSPORT_KEY_CLAIM,
)
from workbench.protocol.errors import ErrorKind
from workbench.protocol.rcar import (
    PROTOCOL_VERSION,
    RENAMED_TEES,
    SUPPORTED_TEES,
    TRUSTEE_BINDING_TEES,
    TRUSTEE_ONLY_TEES,
    AttestRequest,
    AuthRequest,
    Challenge,
)
from workbench.sealed.certificate import (
    SessionCertificate,
    thumbprint,
    token_hash,
)

NONCE_BYTES = 32
MAX_NAMED_RESOURCES = 64
# Sessions stay in the table this long after expiring (for investigation), then go.
SESSION_RETENTION = timedelta(hours=1)
AUTHED, ATTESTED, FAILED = "authed", "attested", "failed"
_SELECT_SESSION = select(sessions).where(sessions.c.id == bindparam("sid"))

# Why a session cannot release, by the state its row is in (anything but attested).
_NOT_ATTESTED = {
    FAILED: "this session's attestation failed; start again with POST /kbs/v0/auth",
    AUTHED: "this session has not attested: POST /kbs/v0/attest first",
}


def session_ref(session_id: str | None) -> str | None:
    """How the audit log names a session: never the cookie value itself (a credential)."""
    if not session_id:
        return None
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def _named_resources(extra: Any) -> tuple[str, ...]:
    if not isinstance(extra, dict) or "resources" not in extra:
        return ()
    named = extra["resources"]
    if not isinstance(named, list) or len(named) > MAX_NAMED_RESOURCES:
        raise KbsError(ErrorKind.MALFORMED_REQUEST,
                       "extra-params.resources must be a list of at most "
                       f"{MAX_NAMED_RESOURCES} resource paths")
    return tuple(dict.fromkeys(check_path(p) for p in named))


def _unsupported(tee: str) -> str:
    if tee.lower() in RENAMED_TEES:
        return (f"the old kbs-types spelling of {RENAMED_TEES[tee.lower()]!r}; send that "
                "name")
    return "a TEE this broker cannot verify" if tee.lower() in TRUSTEE_ONLY_TEES else \
        "an unknown TEE type"


def _check_auth(request: AuthRequest, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The resources an auth request names; raises if the broker cannot serve it
    (``allowed``: the broker's allowed_tees setting, empty for every supported TEE)."""
    if request.version != PROTOCOL_VERSION:
        raise KbsError(ErrorKind.PROTOCOL_VERSION_MISMATCH,
                       f"protocol version {request.version!r} is not supported; this "
                       f"broker speaks {PROTOCOL_VERSION}")
    if request.tee not in SUPPORTED_TEES:
        raise KbsError(ErrorKind.UNSUPPORTED_TEE,
                       f"tee {request.tee!r} is {_unsupported(request.tee)} (supported: "
                       f"{', '.join(SUPPORTED_TEES)})")
    if allowed and request.tee not in allowed:
        raise KbsError(ErrorKind.UNSUPPORTED_TEE,
                       f"tee {request.tee!r} is not allowed by this broker's allowed_tees "
                       f"setting ({', '.join(allowed)})")
    return _named_resources(request.extra_params)


def _check_challenge(row: Challenged, request: AttestRequest, now: datetime) -> None:
    """Raise unless ``request`` answers ``row``'s challenge, unspent and in time."""
    if row.state != AUTHED:
        raise KbsError(ErrorKind.NONCE_SPENT,
                       "this session's nonce was already used by an earlier attest request "
                       "(replay?); start again with POST /kbs/v0/auth")
    if row.expires_at <= stamp(now):
        raise KbsError(ErrorKind.SESSION_EXPIRED, f"the challenge expired at {row.expires_at}; "
                                                  "start again with POST /kbs/v0/auth")
    if not hmac.compare_digest(request.runtime_data.nonce.encode(), row.nonce.encode()):
        raise KbsError(ErrorKind.NONCE_MISMATCH,
                       "runtime-data nonce is not the nonce of this session's challenge")


class Sessions:
    def __init__(self, config: BrokerConfig, store: Store, key: BrokerKey,
                 verifier: EvidenceVerifier, caches: BrokerCaches, appraiser: Appraiser,
                 analysts: Analysts) -> None:
        self._config = config
        self._analysts = analysts
        self._store = store
        self._key = key
        self._verifier = verifier
        self._caches = caches
        self._appraiser = appraiser

    def purge_expired(self, now: datetime) -> int:
        cutoff = stamp(now - SESSION_RETENTION)
        with self._store.write() as conn:
            result = conn.execute(delete(sessions).where(sessions.c.expires_at < cutoff))
        return result.rowcount or 0

    # -- POST /kbs/v0/auth ----------------------------------------------------------------

    def auth(self, request: AuthRequest, now: datetime) -> tuple[str, Challenge, int]:
        try:
            named = _check_auth(request, self._config.allowed_tees)
        except KbsError as err:
            audit.record(self._store, self._key, "refusal",
                         {"stage": "auth", "problem": err.kind, "reason": err.detail}, now)
            raise
        session_id = uuid.uuid4().hex
        nonce = base64.b64encode(os.urandom(NONCE_BYTES)).decode()
        ttl = self._config.nonce_ttl_s
        expires = stamp(now + timedelta(seconds=ttl))
        with self._store.write() as conn:
            hot(conn).run(conn, "session_insert", {
                "id": session_id, "tee": request.tee, "nonce": nonce,
                "resources": json.dumps(list(named)), "created_at": stamp(now),
                "expires_at": expires,
            })
            audit.append(conn, self._key, "auth", {"session": session_ref(session_id),
                                                   "tee": request.tee,
                                                   "resources": list(named)}, now)
        self._caches.challenges.put(session_id, Challenged(session_id, request.tee, nonce,
                                                           AUTHED, named, expires))
        return session_id, Challenge(nonce=nonce, extra_params=""), ttl

    # -- POST /kbs/v0/attest --------------------------------------------------------------

    def _row(self, session_id: str | None) -> Any:
        if not session_id:
            raise KbsError(ErrorKind.MISSING_SESSION,
                           "no kbs-session-id cookie: start with POST /kbs/v0/auth")
        with self._store.read() as conn:
            row = conn.execute(_SELECT_SESSION, {"sid": session_id}).first()
        if row is None:
            raise KbsError(ErrorKind.UNKNOWN_SESSION,
                           "session is unknown (never issued, or expired and removed): start "
                           "with POST /kbs/v0/auth")
        return row

    def _challenged(self, session_id: str | None) -> Challenged:
        cached = self._caches.challenges.get(session_id) if session_id else None
        if cached is not None:
            return cached
        row = self._row(session_id)
        return Challenged(row.id, row.tee, row.nonce, row.state,
                          tuple(json.loads(row.resources)), row.expires_at)

    def _check_evidence(self, row: Challenged, request: AttestRequest,
                        certificate: SessionCertificate | None, now: datetime
                        ) -> tuple[VerifiedEvidence, RawEvidence, bytes, JWK,
                                   runtime_binding.Binding]:
        runtime = request.runtime_data
        transport = bytes.fromhex(runtime.transport_key)
        session_key = bytes.fromhex(runtime.session_key)
        digest = certificate.digest() if certificate else b""
        try:
            tee_key = check_tee_pubkey(runtime.tee_pubkey)
            expected = report_data_for(row.nonce, runtime.tee_pubkey, transport, session_key,
                                       digest)
        except (BadTeeKey, BindingError) as err:
            raise KbsError(ErrorKind.INVALID_TEE_PUBKEY, str(err)) from None
        tee = SUPPORTED_TEES[row.tee]
        raw = decode_tee_evidence(request.tee_evidence, tee)
        binding = runtime_binding.Binding(runtime_binding.WORKBENCH, expected)
        if row.tee in TRUSTEE_BINDING_TEES:
            # The quote's extraData may carry either scheme; which one is settled here.
            binding = runtime_binding.bind_azure_evidence(raw.data, runtime_binding.SessionInputs(
                row.nonce, runtime.tee_pubkey, transport, session_key, digest, raw.additional))
            expected = binding.value
        # verify_evidence returns evidence of exactly the TEE asked for, or raises.
        evidence = self._verifier.verify(raw, tee=tee, now=now)
        runtime_binding.require_carried(binding, evidence.report_data)
        return evidence, raw, expected, tee_key, binding

    def _spend(self, session_id: str, statement: str, values: dict[str, Any], kind: str,
               payload: dict[str, Any], now: datetime) -> None:
        """Leave the 'authed' state exactly once, and audit it in the same transaction."""
        self._caches.challenges.pop(session_id)
        with self._store.write() as conn:
            spent = hot(conn).run(conn, statement, {"id": session_id, **values}).rowcount == 1
            if spent:
                audit.append(conn, self._key, kind, payload, now)
        if not spent:
            error = KbsError(ErrorKind.NONCE_SPENT,
                             "this session's nonce was already used by another attest request "
                             "(replay?); start again with POST /kbs/v0/auth")
            audit.record(self._store, self._key, "attest",
                         {"session": session_ref(session_id), "verdict": "rejected",
                          "problem": error.kind, "reason": error.detail}, now)
            raise error

    def attest(self, session_id: str | None, request: AttestRequest, now: datetime,
               presented: Presented = NOBODY) -> tuple[str, int]:
        ref = session_ref(session_id)
        try:
            if presented.error is not None:
                raise presented.error
            row = self._challenged(session_id)
            _check_challenge(row, request, now)
        except KbsError as err:
            audit.record(self._store, self._key, "attest",
                         {"session": ref, "verdict": "rejected", "problem": err.kind,
                          "reason": err.detail, **presented.audit()}, now)
            raise
        runtime = request.runtime_data
        try:
            certificate = check_sealed_inputs(runtime)
            evidence, raw, expected, tee_key, binding = self._check_evidence(
                row, request, certificate, now)
        except KbsError as err:
            self._spend(row.id, "session_fail", {}, "attest",
                        {"session": ref, "tee": row.tee, "verdict": "rejected",
                         "problem": err.kind, "reason": err.detail}, now)
            raise
        named = row.resources
        session_key = bytes.fromhex(runtime.session_key)
        # Who certified the session, as the broker's own table says now (claim and audit).
        analyst = ({ANALYST_CLAIM: self._analysts.standing(
            certificate, session_key=runtime.session_key,
            kernel_key=thumbprint(runtime.tee_pubkey)).claim()} if certificate else {})
        appraisal, verdicts = self._appraiser.for_token(row.id, named, evidence, expected, now,
                                                        presented, session_key)
        pubkey = runtime.tee_pubkey
        # Only sealed sessions carry the claim and the audit field: others are as before.
        sealed = bool(session_key)
        token = issue_token(
            appraisal, evidence, signing_key=self._key.jwk, issuer=self._config.issuer_name,
            nonce=row.nonce, lifetime_s=self._config.token_lifetime_s, now=now,
            extra={TEE_PUBKEY_CLAIM: pubkey, RESOURCES_CLAIM: verdicts,
                   TRANSPORT_KEY_CLAIM: runtime.transport_key,
                   **({SESSION_KEY_CLAIM: runtime.session_key} if sealed else {}),
                   **analyst},
        )
        ttl = self._config.session_ttl_s
        expires = now + timedelta(seconds=ttl)
        self._spend(
            row.id, "session_attest",
            {"tee_pubkey": json.dumps(pubkey), "evidence": base64.b64encode(raw.data).decode(),
             "evidence_certs": json.dumps([base64.b64encode(c).decode() for c in raw.certs]),
             "attested_at": stamp(now), "expires_at": stamp(expires), "token": token,
             "transport_key": runtime.transport_key, "session_key": runtime.session_key,
             "session_certificate": json.dumps(certificate.to_json()) if certificate else None,
             "binding": runtime_binding.stored(binding, raw.additional)},
            "attest",
            {"session": ref, "tee": row.tee, "binding": binding.scheme,
             "verdict": appraisal.status.value,
             "policy_id": appraisal.policy_id,
             "failed_rules": [r.name for r in appraisal.failed_rules],
             "resources": verdicts, "kernel": identity(evidence),
             "transport_key": runtime.transport_key,
             **({"session_key": runtime.session_key} if sealed else {}),
             **({"analyst": analyst[ANALYST_CLAIM]} if analyst else {}),
             **presented.audit()},
            now,
        )
        self._caches.sessions.put(row.id, Session(row.id, row.tee, named, expires, pubkey,
                                                  tee_key, now, evidence, expected,
                                                  session_key, certificate,
                                                  token_hash(token)))
        return token, ttl

    # -- the session a resource request presents ------------------------------------------

    def _from_row(self, session_id: str | None) -> Session:
        row = self._row(session_id)
        if row.state != ATTESTED:
            raise KbsError(ErrorKind.NOT_ATTESTED,
                           _NOT_ATTESTED.get(row.state, _NOT_ATTESTED[AUTHED]))
        attested_at = datetime.fromisoformat(row.attested_at)
        raw = RawEvidence(base64.b64decode(row.evidence),
                          tuple(base64.b64decode(c) for c in json.loads(row.evidence_certs)))
        # Evidence was judged when presented; a replica re-verifies it as of that moment.
        evidence = self._verifier.verify(raw, tee=SUPPORTED_TEES[row.tee], now=attested_at)
        pubkey = json.loads(row.tee_pubkey)
        session_key = bytes.fromhex(row.session_key or "")
        certificate = (SessionCertificate.from_json(json.loads(row.session_certificate))
                       if row.session_certificate else None)
        scheme, additional = runtime_binding.scheme_of(row.binding)
        expected = runtime_binding.expected_for(scheme, runtime_binding.SessionInputs(
            row.nonce, pubkey, bytes.fromhex(row.transport_key or ""), session_key,
            certificate.digest() if certificate else b"", additional))
        return Session(row.id, row.tee, tuple(json.loads(row.resources)),
                       datetime.fromisoformat(row.expires_at), pubkey,
                       check_tee_pubkey(pubkey), attested_at, evidence, expected,
                       session_key, certificate, token_hash(row.token or ""))

    def attested(self, session_id: str | None, now: datetime) -> Session:
        """The attested, unexpired session ``session_id`` names; raises otherwise."""
        session = self._caches.sessions.get(session_id) if session_id else None
        if session is None:
            session = self._from_row(session_id)
            self._caches.sessions.put(session.id, session)
        if session.expires_at <= now:
            raise KbsError(ErrorKind.SESSION_EXPIRED,
                           f"the session expired at {stamp(session.expires_at)}; attest again")
        return session
