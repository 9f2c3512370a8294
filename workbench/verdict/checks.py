"""A checker's own verdict on a kernel: re-check what the kernel reports, trust none of it.

Every check is one row of ``CHECKS``: its name, the state a failure leads to, whether later
checks still make sense after it failed, and the function. The rows run in order and all of
them are reported, so the trust panel can show what held and what did not.

Evidence is verified as of the moment the broker appraised it (the token's ``iat``), the way
the broker re-verifies a stored session: the question is whether the broker was right then.
Whether the token is still current is a separate check (``token-fresh``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench.attestation.appraise.ear import EarClaims, TokenInvalid, verify_token
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.tee.binding import (
    BindingError,
    binding_matches,
    jwk_thumbprint,
    report_data_for,
)
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.result import EvidenceRejected, VerifiedEvidence
from workbench.protocol.claims import SESSION_KEY_CLAIM, TEE_PUBKEY_CLAIM
from workbench.verdict.report import KernelReport
from workbench.verdict.result import BindingResult, TransportNote, TrustState
from workbench.verdict.trust import TrustSettings


@dataclass
class Context:
    """What the rows share while they run: the input, and what earlier rows established."""

    report: KernelReport
    trust: TrustSettings
    now: datetime
    claims: EarClaims | None = None
    kid: str | None = None
    expired: bool = False
    evidence: VerifiedEvidence | None = None
    binding: BindingResult | None = None
    kernel_key: str | None = None
    transport: TransportNote | None = None


class Failed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _thumb(jwk: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(jwk_thumbprint(jwk)).rstrip(b"=").decode()


def stamp(seconds: int | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def _unverified_payload(token: str) -> dict[str, Any]:
    # Only to learn exp after a verified signature; never used before verify_token passed.
    jws = JWS()
    jws.deserialize(token)
    return json.loads(jws.objects["payload"])


def _claims(ctx: Context) -> EarClaims:
    assert ctx.claims is not None  # rows after token-signature run only once it held
    return ctx.claims


# -- checks -------------------------------------------------------------------------------

def _broker_key(ctx: Context) -> str:
    if not ctx.trust.broker_keys:
        raise Failed(ctx.trust.key_problem or "no broker public key is configured")
    kids = ", ".join(k.thumbprint()[:12] for k in ctx.trust.broker_keys)
    return f"{len(ctx.trust.broker_keys)} key(s) from {ctx.trust.key_source}: {kids}"


def _verify_any(token: str, keys: Sequence[JWK], now: datetime) -> tuple[EarClaims, str]:
    problems = []
    for key in keys:
        try:
            return verify_token(token, key, now=now), key.thumbprint()
        except TokenInvalid as err:
            problems.append(err.reason)
        except ValueError as err:  # a configured key that is not ES256
            problems.append(str(err))
    # The same reason from every key says it once.
    raise TokenInvalid("; ".join(dict.fromkeys(problems)) or "no key to verify with")


def _token_signature(ctx: Context) -> str:
    try:
        ctx.claims, ctx.kid = _verify_any(ctx.report.token, ctx.trust.broker_keys, ctx.now)
    except TokenInvalid as err:
        if not err.reason.startswith("token expired"):
            raise Failed(f"the broker's token is not valid: {err.reason}") from None
        # Authentic but old: verify the signature as of just before expiry to read it.
        try:
            exp = int(_unverified_payload(ctx.report.token)["exp"])
            moment = datetime.fromtimestamp(exp - 1, UTC)
            ctx.claims, ctx.kid = _verify_any(ctx.report.token, ctx.trust.broker_keys, moment)
        except (TokenInvalid, JWException, ValueError, KeyError, TypeError) as again:
            raise Failed(f"the broker's token is not valid: {again}") from None
        ctx.expired = True
    return f"ES256 signature by broker key {(ctx.kid or '')[:12]}"


def _token_fresh(ctx: Context) -> str:
    exp = _claims(ctx).exp
    if ctx.expired:
        raise Failed(f"the attestation token expired at {stamp(exp)}: "
                     "attest again for a current verdict")
    return f"valid until {stamp(exp)}"


def _kernel_key(ctx: Context) -> str:
    bound = _claims(ctx).get(TEE_PUBKEY_CLAIM)
    if not isinstance(bound, dict):
        raise Failed(f"the token binds no kernel key (no '{TEE_PUBKEY_CLAIM}' claim)")
    try:
        bound_thumb, kernel_thumb = _thumb(bound), _thumb(ctx.report.tee_pubkey)
    except BindingError as err:
        raise Failed(f"cannot compare kernel keys: {err}") from None
    ctx.kernel_key = kernel_thumb
    if bound_thumb != kernel_thumb:
        raise Failed(f"the token is bound to another kernel's key ({bound_thumb[:12]}), not "
                     f"to this kernel's key ({kernel_thumb[:12]})")
    return f"token bound to this kernel's key {kernel_thumb[:12]}"


def _nonce(ctx: Context) -> str:
    nonce = _claims(ctx).nonce
    if not nonce:
        raise Failed("the token carries no nonce (eat_nonce)")
    if ctx.report.nonce is not None and ctx.report.nonce != nonce:
        raise Failed("the kernel reports a different nonce than the token's eat_nonce")
    return "the token's eat_nonce is the kernel's challenge"


def _evidence(ctx: Context) -> str:
    if ctx.report.evidence is None:
        raise Failed("the kernel reported no evidence to check")
    at = datetime.fromtimestamp(_claims(ctx).iat, UTC)
    try:
        ctx.evidence = verify_evidence(ctx.report.evidence, now=at, certs=ctx.report.certs,
                                       collateral=ctx.trust.collateral,
                                       simulated_keys=ctx.trust.simulated_keys)
    except EvidenceRejected as err:
        raise Failed(f"the evidence does not verify: {err.check}: {err.reason}") from None
    except MalformedEvidence as err:
        raise Failed(f"the evidence is malformed: {err}") from None
    kind = "simulated TEE" if ctx.evidence.simulated else ctx.evidence.tee.upper()
    return f"{kind} evidence verified ({len(ctx.evidence.checks)} checks)"


def _evidence_of(ctx: Context) -> VerifiedEvidence:
    assert ctx.evidence is not None  # rows that need it run only after the evidence row held
    return ctx.evidence


def _binding(ctx: Context) -> str:
    evidence = _evidence_of(ctx)
    try:
        expected = report_data_for(str(_claims(ctx).nonce), ctx.report.tee_pubkey,
                                   ctx.report.transport_key, ctx.report.session_key,
                                   ctx.report.certificate_digest)
    except BindingError as err:
        raise Failed(f"cannot compute the binding: {err}") from None
    ok = binding_matches(evidence.report_data, expected)
    ctx.binding = BindingResult(ok, expected.hex(), evidence.report_data.hex())
    if not ok:
        raise Failed("the evidence's report data does not bind the token's nonce and this "
                     "kernel's key")
    return "report data = report_data_for(nonce, kernel key, transport key)"


def _session_key(ctx: Context) -> str:
    stated = str(_claims(ctx).get(SESSION_KEY_CLAIM, ""))
    reported = ctx.report.session_key.hex()
    if stated != reported:
        raise Failed(f"the token states sealed-session key {stated[:16] or '(none)'}..., the "
                     f"kernel reports {reported[:16] or '(none)'}...")
    if not reported:
        return "the kernel is not locked to a sealed session"
    return f"the kernel is locked to sealed-session key {reported[:16]}..."


def _short(key: bytes) -> str:
    return key.hex()[:16]


def _transport_key(ctx: Context) -> str:
    transport = ctx.trust.transport
    assert transport is not None  # the row runs only when the checker has a connection
    bound = ctx.report.transport_key
    ctx.transport = TransportNote(transport.source, bound.hex(),
                                  transport.server_key.hex()
                                  if transport.server_key is not None else None)
    if transport.server_key is None:
        raise Failed(f"{transport.source} is not encrypted with a key only the kernel holds "
                     "(no CurveZMQ server key)")
    if not bound:
        raise Failed(f"the kernel's evidence binds no transport key, so the key of "
                     f"{transport.source} cannot be tied to the attested kernel")
    if bound != transport.server_key:
        raise Failed(f"the evidence binds transport key {_short(bound)}..., but "
                     f"{transport.source} uses server key {_short(transport.server_key)}...: "
                     "another process holds this connection's key")
    return f"the evidence binds the server key of {transport.source} ({_short(bound)}...)"


def _appraised_evidence(ctx: Context) -> str:
    evidence = _evidence_of(ctx)
    annotated = _claims(ctx).submod().annotated_evidence or {}
    same = (annotated.get("tee") == evidence.tee
            and annotated.get("report_data") == evidence.report_data.hex()
            and annotated.get("claims") == json.loads(json.dumps(evidence.claims)))
    if not same:
        raise Failed("the evidence the kernel reports is not the evidence the broker appraised")
    return "the broker appraised exactly this evidence"


def _policy(ctx: Context) -> str:
    appraisal = _claims(ctx).submod()
    status = appraisal.status.value
    failed = appraisal.failed_rules
    if status == "contraindicated" or failed:
        reasons = "; ".join(f"{r.get('name')}: {r.get('reason')}" for r in failed)
        raise Failed(f"policy '{appraisal.policy_id}' refuses this kernel: "
                     f"{reasons or status}")
    if status not in ("affirming", "warning"):
        raise Failed(f"the broker reached no verdict (ear.status {status!r})")
    return f"{len(appraisal.rule_list)} rule(s) passed; broker verdict {status}"


def _has_evidence(ctx: Context) -> bool:
    return ctx.evidence is not None


def _has_transport(ctx: Context) -> bool:
    return ctx.trust.transport is not None


def _always(_ctx: Context) -> bool:
    return True


@dataclass(frozen=True)
class CheckRow:
    name: str
    fails_as: TrustState
    # Later rows read what this one established; after a failure they cannot run.
    required: bool
    run: Callable[[Context], str]
    # Whether the row can run for this checker and what earlier rows established.
    applies: Callable[[Context], bool] = _always


CHECKS: tuple[CheckRow, ...] = (
    CheckRow("broker-key", TrustState.UNVERIFIED, True, _broker_key),
    CheckRow("token-signature", TrustState.REFUSED, True, _token_signature),
    CheckRow("token-fresh", TrustState.UNVERIFIED, False, _token_fresh),
    CheckRow("kernel-key", TrustState.REFUSED, False, _kernel_key),
    CheckRow("nonce", TrustState.REFUSED, False, _nonce),
    CheckRow("evidence", TrustState.REFUSED, False, _evidence),
    CheckRow("binding", TrustState.REFUSED, False, _binding, _has_evidence),
    # The token and the kernel agree on the sealed session, or on there being none.
    CheckRow("session-key", TrustState.REFUSED, False, _session_key),
    CheckRow("transport-key", TrustState.REFUSED, False, _transport_key,
             lambda ctx: _has_evidence(ctx) and _has_transport(ctx)),
    CheckRow("appraised-evidence", TrustState.REFUSED, False, _appraised_evidence,
             _has_evidence),
    CheckRow("policy", TrustState.REFUSED, False, _policy),
)


def failure_state(row: CheckRow, report: KernelReport) -> TrustState:
    """Evidence that was never sent cannot be checked (unverified); evidence that was sent
    and fails is wrong (refused)."""
    if row.name == "evidence" and report.evidence is None:
        return TrustState.UNVERIFIED
    return row.fails_as
