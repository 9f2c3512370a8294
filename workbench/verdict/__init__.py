"""The verdict engine: a checker's own judgement of what a confidential kernel reports.

It sits below both the lab server (which judges what the lab extension forwards) and the
client-side connection check (``workbench.client.check``), and imports neither: the input
is a :class:`KernelReport`, what is trusted is a :class:`TrustSettings`, the answer is a
:class:`Verdict`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from workbench.attestation.appraise.ear import EarClaims, TokenInvalid, describe_claim
from workbench.protocol.claims import RESOURCES_CLAIM
from workbench.verdict.checks import CHECKS, Context, Failed, failure_state, stamp
from workbench.verdict.report import BadReport, KernelReport, parse_kernel_id, parse_report
from workbench.verdict.result import (
    AppraisalSummary,
    BrokerInfo,
    CheckOutcome,
    TokenSummary,
    TrustClaim,
    TrustState,
    Verdict,
)
from workbench.verdict.trust import TransportContext, TrustSettings

__all__ = ["CHECKS", "BadReport", "KernelReport", "TransportContext", "TrustSettings",
           "TrustState", "Verdict", "judge", "parse_kernel_id", "parse_report"]


def _token_summary(ctx: Context) -> TokenSummary | None:
    claims = ctx.claims
    if claims is None:
        return None
    try:
        vector = claims.submod().trust_vector
    except TokenInvalid:
        vector = {}
    verifier = claims.get("ear.verifier-id")
    return TokenSummary(
        issuer=claims.issuer,
        issued_at=stamp(claims.iat),
        expires_at=stamp(claims.exp),
        expired=ctx.expired,
        age_s=max(0, int(ctx.now.timestamp()) - claims.iat),
        nonce=claims.nonce,
        kid=ctx.kid,
        verifier=verifier if isinstance(verifier, dict) else None,
        trust_vector={name: TrustClaim(code, describe_claim(name, code))
                      for name, code in vector.items()},
    )


def _appraisal_summary(claims: EarClaims | None) -> AppraisalSummary | None:
    if claims is None:
        return None
    try:
        appraisal = claims.submod()
    except TokenInvalid:
        return None
    return AppraisalSummary(
        status=appraisal.status.value,
        policy_id=appraisal.policy_id,
        rules=tuple(appraisal.rule_list),
        failed_rules=tuple(r.get("name") for r in appraisal.failed_rules),
    )


def judge(report: KernelReport, trust: TrustSettings, *, now: datetime | None = None
          ) -> Verdict:
    """The verdict on ``report``; never raises for bad input it was given."""
    ctx = Context(report, trust, now or datetime.now(UTC))
    checks: list[CheckOutcome] = []
    state: TrustState | None = None
    reason = ""
    stopped = False
    for row in CHECKS:
        if stopped or not row.applies(ctx):
            continue
        try:
            detail, ok = row.run(ctx), True
        except Failed as failure:
            detail, ok = failure.detail, False
        except TokenInvalid as err:  # a token whose submod is missing
            detail, ok = err.reason, False
        checks.append(CheckOutcome(row.name, ok, detail))
        if ok:
            continue
        fails_as = failure_state(row, report)
        if state is None or fails_as.severity > state.severity:
            state, reason = fails_as, detail
        stopped = row.required
    if state is None:
        assert ctx.evidence is not None  # every row held, the evidence row among them
        state = TrustState.SIMULATED if ctx.evidence.simulated else TrustState.VERIFIED
    resources = ctx.claims.get(RESOURCES_CLAIM) if ctx.claims is not None else None
    return Verdict(
        state=state,
        reason=reason,
        checked_at=ctx.now.isoformat(),
        checks=tuple(checks),
        broker=BrokerInfo(trust.broker_url, trust.key_source, ctx.kid),
        kernel_key=ctx.kernel_key,
        token=_token_summary(ctx),
        appraisal=_appraisal_summary(ctx.claims),
        evidence=ctx.evidence,
        binding=ctx.binding,
        transport=ctx.transport,
        resources=resources if isinstance(resources, dict) else {},
    )
