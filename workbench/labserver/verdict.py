"""The server's own verdict on a kernel: re-check what the kernel reports, trust none of it.

Every check is one row of ``CHECKS``: its name, the state a failure leads to, whether later
checks still make sense after it failed, and the function. The rows run in order and all of
them are reported, so the trust panel can show what held and what did not.

States, worst first: ``refused`` (something checked and was wrong: a bad signature, a token
for another kernel's key, evidence that does not verify or does not bind, a failed policy
rule), ``unverified`` (something could not be checked: no broker key, an expired token, no
evidence), then ``simulated`` or ``verified`` when every check held.

Evidence is verified as of the moment the broker appraised it (the token's ``iat``), the way
the broker re-verifies a stored session: the question is whether the broker was right then.
Whether the token is still current is a separate check (``token-fresh``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench.attestation.appraise.ear import (
    TokenInvalid,
    describe_claim,
    submod,
    verify_token,
)
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.tee.binding import (
    BindingError,
    binding_matches,
    jwk_thumbprint,
    report_data_for,
)
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.result import EvidenceRejected, VerifiedEvidence
from workbench.labserver.report import KernelReport

VERIFIED = "verified"
SIMULATED = "simulated"
UNVERIFIED = "unverified"
REFUSED = "refused"
# Worse states win when checks disagree.
_SEVERITY = {VERIFIED: 0, SIMULATED: 0, UNVERIFIED: 1, REFUSED: 2}
# The claim the broker binds the kernel's key with (workbench.kbs.service.attest).
TOKEN_KEY_CLAIM = "tee-pubkey"  # noqa: S105 (a claim name)
RESOURCES_CLAIM = "workbench.resources"


@dataclass(frozen=True)
class TransportContext:
    """The CurveZMQ server key the checking side's own connection to the kernel uses.

    ``server_key`` is the raw 32-byte key (None: that connection is not encrypted with a key
    only the kernel holds); ``source`` names the connection for messages.
    """

    server_key: bytes | None
    source: str


@dataclass(frozen=True)
class TrustSettings:
    """What the server trusts: the broker's signing keys and the evidence verifiers' inputs.

    ``transport``: the connection whose key the kernel's evidence must bind; None when the
    checking side has no connection to the kernel it could name (the check is then skipped).
    """

    broker_keys: Sequence[JWK]
    broker_url: str = ""
    key_source: str = ""
    key_problem: str = ""
    simulated_keys: Iterable[Any] | None = None
    collateral: Any = None
    transport: TransportContext | None = None


@dataclass
class _Context:
    report: KernelReport
    trust: TrustSettings
    now: datetime
    claims: dict[str, Any] | None = None
    kid: str | None = None
    expired: bool = False
    evidence: VerifiedEvidence | None = None
    binding: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _thumb(jwk: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(jwk_thumbprint(jwk)).rstrip(b"=").decode()


def _stamp(seconds: int | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def _unverified_payload(token: str) -> dict[str, Any]:
    # Only to learn exp after a verified signature; never used before verify_token passed.
    jws = JWS()
    jws.deserialize(token)
    return json.loads(jws.objects["payload"])


# -- checks -------------------------------------------------------------------------------

def _broker_key(ctx: _Context) -> str:
    if not ctx.trust.broker_keys:
        raise _Failed(ctx.trust.key_problem or "no broker public key is configured")
    kids = ", ".join(k.thumbprint()[:12] for k in ctx.trust.broker_keys)
    return f"{len(ctx.trust.broker_keys)} key(s) from {ctx.trust.key_source}: {kids}"


def _verify_any(token: str, keys: Sequence[JWK], now: datetime) -> tuple[dict[str, Any], str]:
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


def _token_signature(ctx: _Context) -> str:
    try:
        ctx.claims, ctx.kid = _verify_any(ctx.report.token, ctx.trust.broker_keys, ctx.now)
    except TokenInvalid as err:
        if not err.reason.startswith("token expired"):
            raise _Failed(f"the broker's token is not valid: {err.reason}") from None
        # Authentic but old: verify the signature as of just before expiry to read it.
        try:
            exp = int(_unverified_payload(ctx.report.token)["exp"])
            moment = datetime.fromtimestamp(exp - 1, UTC)
            ctx.claims, ctx.kid = _verify_any(ctx.report.token, ctx.trust.broker_keys, moment)
        except (TokenInvalid, JWException, ValueError, KeyError, TypeError) as again:
            raise _Failed(f"the broker's token is not valid: {again}") from None
        ctx.expired = True
    return f"ES256 signature by broker key {ctx.kid[:12]}"


def _token_fresh(ctx: _Context) -> str:
    claims = ctx.claims or {}
    if ctx.expired:
        raise _Failed(f"the attestation token expired at {_stamp(claims.get('exp'))}: "
                      "attest again for a current verdict")
    return f"valid until {_stamp(claims.get('exp'))}"


def _kernel_key(ctx: _Context) -> str:
    bound = (ctx.claims or {}).get(TOKEN_KEY_CLAIM)
    if not isinstance(bound, dict):
        raise _Failed(f"the token binds no kernel key (no '{TOKEN_KEY_CLAIM}' claim)")
    try:
        bound_thumb, kernel_thumb = _thumb(bound), _thumb(ctx.report.tee_pubkey)
    except BindingError as err:
        raise _Failed(f"cannot compare kernel keys: {err}") from None
    ctx.notes["kernel_key"] = kernel_thumb
    if bound_thumb != kernel_thumb:
        raise _Failed(f"the token is bound to another kernel's key ({bound_thumb[:12]}), not "
                      f"to this kernel's key ({kernel_thumb[:12]})")
    return f"token bound to this kernel's key {kernel_thumb[:12]}"


def _nonce(ctx: _Context) -> str:
    nonce = (ctx.claims or {}).get("eat_nonce")
    if not isinstance(nonce, str) or not nonce:
        raise _Failed("the token carries no nonce (eat_nonce)")
    if ctx.report.nonce is not None and ctx.report.nonce != nonce:
        raise _Failed("the kernel reports a different nonce than the token's eat_nonce")
    return "the token's eat_nonce is the kernel's challenge"


def _evidence(ctx: _Context) -> str:
    if ctx.report.evidence is None:
        raise _Failed("the kernel reported no evidence to check")
    at = datetime.fromtimestamp(int((ctx.claims or {}).get("iat", ctx.now.timestamp())), UTC)
    try:
        ctx.evidence = verify_evidence(ctx.report.evidence, now=at, certs=ctx.report.certs,
                                       collateral=ctx.trust.collateral,
                                       simulated_keys=ctx.trust.simulated_keys)
    except EvidenceRejected as err:
        raise _Failed(f"the evidence does not verify: {err.check}: {err.reason}") from None
    except MalformedEvidence as err:
        raise _Failed(f"the evidence is malformed: {err}") from None
    kind = "simulated TEE" if ctx.evidence.simulated else ctx.evidence.tee.upper()
    return f"{kind} evidence verified ({len(ctx.evidence.checks)} checks)"


def _binding(ctx: _Context) -> str:
    evidence = ctx.evidence
    assert evidence is not None
    try:
        expected = report_data_for(str((ctx.claims or {}).get("eat_nonce")),
                                   ctx.report.tee_pubkey, ctx.report.transport_key)
    except BindingError as err:
        raise _Failed(f"cannot compute the binding: {err}") from None
    ok = binding_matches(evidence.report_data, expected)
    ctx.binding = {"ok": ok, "expected": expected.hex(), "actual": evidence.report_data.hex()}
    if not ok:
        raise _Failed("the evidence's report data does not bind the token's nonce and this "
                      "kernel's key")
    return "report data = report_data_for(nonce, kernel key, transport key)"


def _short(key: bytes) -> str:
    return key.hex()[:16]


def _transport_key(ctx: _Context) -> str:
    transport = ctx.trust.transport
    assert transport is not None
    bound = ctx.report.transport_key
    ctx.notes["transport"] = {"source": transport.source, "bound": bound.hex(),
                              "server_key": transport.server_key.hex()
                              if transport.server_key is not None else None}
    if transport.server_key is None:
        raise _Failed(f"{transport.source} is not encrypted with a key only the kernel holds "
                      "(no CurveZMQ server key)")
    if not bound:
        raise _Failed(f"the kernel's evidence binds no transport key, so the key of "
                      f"{transport.source} cannot be tied to the attested kernel")
    if bound != transport.server_key:
        raise _Failed(f"the evidence binds transport key {_short(bound)}..., but "
                      f"{transport.source} uses server key {_short(transport.server_key)}...: "
                      "another process holds this connection's key")
    return f"the evidence binds the server key of {transport.source} ({_short(bound)}...)"


def _appraised_evidence(ctx: _Context) -> str:
    evidence = ctx.evidence
    assert evidence is not None
    annotated = submod(ctx.claims or {}).get("ear.veraison.annotated-evidence") or {}
    same = (annotated.get("tee") == evidence.tee
            and annotated.get("report_data") == evidence.report_data.hex()
            and annotated.get("claims") == json.loads(json.dumps(evidence.claims)))
    if not same:
        raise _Failed("the evidence the kernel reports is not the evidence the broker appraised")
    return "the broker appraised exactly this evidence"


def _policy(ctx: _Context) -> str:
    appraisal = submod(ctx.claims or {})
    status = appraisal.get("ear.status")
    rules = appraisal.get("ear.workbench.rules") or []
    failed = [r.get("name", "?") for r in rules if isinstance(r, dict) and not r.get("passed")]
    if status == "contraindicated" or failed:
        reasons = "; ".join(f"{r.get('name')}: {r.get('reason')}" for r in rules
                            if isinstance(r, dict) and not r.get("passed"))
        raise _Failed(f"policy '{appraisal.get('ear.appraisal-policy-id')}' refuses this "
                      f"kernel: {reasons or status}")
    if status not in ("affirming", "warning"):
        raise _Failed(f"the broker reached no verdict (ear.status {status!r})")
    return f"{len(rules)} rule(s) passed; broker verdict {status}"


@dataclass(frozen=True)
class CheckRow:
    name: str
    fails_as: str
    # Later rows read what this one established; after a failure they cannot run.
    required: bool
    run: Callable[[_Context], str]


CHECKS: tuple[CheckRow, ...] = (
    CheckRow("broker-key", UNVERIFIED, True, _broker_key),
    CheckRow("token-signature", REFUSED, True, _token_signature),
    CheckRow("token-fresh", UNVERIFIED, False, _token_fresh),
    CheckRow("kernel-key", REFUSED, False, _kernel_key),
    CheckRow("nonce", REFUSED, False, _nonce),
    CheckRow("evidence", REFUSED, False, _evidence),
    CheckRow("binding", REFUSED, False, _binding),
    CheckRow("transport-key", REFUSED, False, _transport_key),
    CheckRow("appraised-evidence", REFUSED, False, _appraised_evidence),
    CheckRow("policy", REFUSED, False, _policy),
)
# Rows that need the evidence row to have succeeded.
_NEEDS_EVIDENCE = {"binding", "transport-key", "appraised-evidence"}
# Rows that need something only some callers have.
_NEEDS = {"transport-key": lambda ctx: ctx.trust.transport is not None}


def _missing_evidence_state(report: KernelReport) -> str:
    return UNVERIFIED if report.evidence is None else REFUSED


def _token_summary(ctx: _Context) -> dict[str, Any] | None:
    claims = ctx.claims
    if claims is None:
        return None
    appraisal = submod(claims)
    vector = appraisal.get("ear.trustworthiness-vector") or {}
    return {
        "issuer": claims.get("iss"),
        "issued_at": _stamp(claims.get("iat")),
        "expires_at": _stamp(claims.get("exp")),
        "expired": ctx.expired,
        "age_s": max(0, int(ctx.now.timestamp()) - int(claims.get("iat", 0))),
        "nonce": claims.get("eat_nonce"),
        "kid": ctx.kid,
        "verifier": claims.get("ear.verifier-id"),
        "trust_vector": {name: {"code": code, "meaning": describe_claim(name, code)}
                         for name, code in vector.items()},
    }


def _appraisal_summary(claims: dict[str, Any] | None) -> dict[str, Any] | None:
    if claims is None:
        return None
    appraisal = submod(claims)
    rules = [r for r in appraisal.get("ear.workbench.rules") or [] if isinstance(r, dict)]
    return {
        "status": appraisal.get("ear.status"),
        "policy_id": appraisal.get("ear.appraisal-policy-id"),
        "rules": rules,
        "failed_rules": [r.get("name") for r in rules if not r.get("passed")],
    }


def judge(report: KernelReport, trust: TrustSettings, *, now: datetime | None = None
          ) -> dict[str, Any]:
    """The verdict (a JSON object) on ``report``; never raises for bad input it was given."""
    ctx = _Context(report, trust, now or datetime.now(UTC))
    checks: list[dict[str, Any]] = []
    state, reason = None, ""
    stopped = False
    for row in CHECKS:
        if stopped or (row.name in _NEEDS_EVIDENCE and ctx.evidence is None):
            continue
        if row.name in _NEEDS and not _NEEDS[row.name](ctx):
            continue
        try:
            detail, ok = row.run(ctx), True
        except _Failed as failure:
            detail, ok = failure.detail, False
        except TokenInvalid as err:  # a token whose submod is missing
            detail, ok = err.reason, False
        checks.append({"name": row.name, "ok": ok, "detail": detail})
        if ok:
            continue
        fails_as = _missing_evidence_state(report) if row.name == "evidence" else row.fails_as
        if state is None or _SEVERITY[fails_as] > _SEVERITY[state]:
            state, reason = fails_as, detail
        stopped = row.required
    if state is None:
        assert ctx.evidence is not None
        state = SIMULATED if ctx.evidence.simulated else VERIFIED
    claims = ctx.claims
    return {
        "v": 1,
        "state": state,
        "reason": reason,
        "checked_at": ctx.now.isoformat(),
        "checks": checks,
        "broker": {"url": trust.broker_url, "key_source": trust.key_source, "kid": ctx.kid},
        "kernel_key": ctx.notes.get("kernel_key"),
        "token": _token_summary(ctx),
        "appraisal": _appraisal_summary(claims),
        "evidence": ctx.evidence.to_json() if ctx.evidence is not None else None,
        "binding": ctx.binding,
        "transport": ctx.notes.get("transport"),
        "resources": (claims or {}).get(RESOURCES_CLAIM) or {},
    }
