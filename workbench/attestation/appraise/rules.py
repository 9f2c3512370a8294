"""The appraisal rules, as a table: each rule looks at verified evidence and the policy.

A rule function returns a :class:`RuleResult`, or None when it does not apply to this
evidence (an SGX reference value says nothing about an SNP report; a reference value the
policy leaves out constrains nothing). Each rule also names the AR4SI trustworthiness claim
it informs and the codes it contributes (see ``ear.py`` for their meaning).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.attestation.appraise.policy import SNP_POLICY_FLAGS, SNP_POLICY_TEES, Policy
from workbench.attestation.verify.binding_match import binding_matches
from workbench.attestation.verify.claims import declared
from workbench.attestation.verify.result import VerifiedEvidence

HARDWARE_TEES = ("sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm")
# TEEs whose TCB status comes from Intel collateral: unknown without it is a failure.
COLLATERAL_TEES = ("sgx", "tdx", "az-tdx-vtpm")
# Azure vTPM TEEs: their evidence carries PCRs and the HCL vm-configuration.
VTPM_TEES = ("az-snp-vtpm", "az-tdx-vtpm")
PCR_INDICES = tuple(range(24))
# The vm-configuration flags a policy may require (the claims declaration names them).
VM_CONFIGURATION_FLAGS: tuple[str, ...] = declared("az-snp-vtpm").decoded(  # type: ignore[union-attr]
    "vm_configuration")
# Clocks of attester and verifier differ a little; a larger gap means a wrong clock or forgery.
FUTURE_SKEW_S = 60


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome. ``warning`` marks a pass the policy accepts with a caveat."""

    name: str
    passed: bool
    expected: Any
    actual: Any
    reason: str
    warning: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "warning": self.warning,
            "expected": self.expected,
            "actual": self.actual,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Context:
    evidence: VerifiedEvidence
    policy: Policy
    now: datetime
    expected_report_data: bytes | None
    # The sealed-session key the evidence binds (b"": the kernel is not locked to one).
    session_key: bytes = b""


@dataclass(frozen=True)
class VectorEffect:
    """Codes a rule contributes to one trustworthiness claim on pass, warning and failure."""

    claim: str
    passed: int
    warning: int
    failed: int


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[Context], RuleResult | None]
    effects: tuple[VectorEffect, ...] = ()


def _result(name: str, ok: bool, expected: Any, actual: Any, good: str, bad: str,
            warning: bool = False) -> RuleResult:
    return RuleResult(name, ok, expected, actual, good if ok else bad, warning and ok)


def _verified(ctx: Context) -> RuleResult | None:
    if ctx.evidence.tee not in HARDWARE_TEES:
        return None
    names = ", ".join(c.name for c in ctx.evidence.checks) or "all checks"
    return RuleResult("verified", True, "verified evidence", ctx.evidence.tee,
                      f"signatures and certificate chain verified ({names})")


def _tee_allowed(ctx: Context) -> RuleResult:
    tee, allowed = ctx.evidence.tee, list(ctx.policy.allowed_tee)
    return _result("tee-allowed", tee in allowed, allowed, tee,
                   f"TEE type '{tee}' is allowed",
                   f"TEE type '{tee}' is not allowed by policy (allowed: {', '.join(allowed)})")


def _simulation(ctx: Context) -> RuleResult | None:
    if not (ctx.evidence.simulated or ctx.evidence.tee == "simulated"):
        return None
    allowed = ctx.policy.allow_simulation
    return _result(
        "simulation", allowed, "allow_simulation: true" if allowed else "hardware TEE",
        "simulated",
        "simulated TEE accepted because the policy sets allow_simulation: this is not "
        "hardware-protected",
        "simulated evidence is refused: the policy does not set allow_simulation "
        "(a simulated TEE protects nothing from the machine's operator)",
        warning=True,
    )


def _debug(ctx: Context) -> RuleResult:
    debug = ctx.evidence.claims.get("debug")
    allowed = ctx.policy.debug_allowed
    if debug is None:
        return RuleResult("debug", False, "debug: false", None,
                          "evidence does not say whether debug mode is on")
    return _result(
        "debug", (not debug) or allowed, "debug allowed" if allowed else False, debug,
        "debug mode is on, which the policy allows (memory is readable by the host)"
        if debug else "debug mode is off",
        "debug mode is on: the host can read the TEE's memory; the policy does not set "
        "debug_allowed",
        warning=bool(debug),
    )


def _tcb_status(ctx: Context) -> RuleResult | None:
    status = ctx.evidence.tcb_status
    if status is None and ctx.evidence.tee not in COLLATERAL_TEES:
        return None
    accepted = list(ctx.policy.accepted_tcb_statuses)
    if status is None:
        return RuleResult("tcb-status", False, accepted, None,
                          "TCB status unknown: no collateral was supplied (use --collateral)")
    advisories = ", ".join(ctx.evidence.advisory_ids)
    suffix = f" (advisories: {advisories})" if advisories else ""
    return _result(
        "tcb-status", status in accepted, accepted, status,
        f"TCB status {status} is accepted{suffix}",
        f"TCB status {status} is not accepted by policy (accepted: "
        f"{', '.join(accepted)}){suffix}",
        warning=status != "UpToDate",
    )


def _reference_present(ctx: Context) -> RuleResult | None:
    # A policy must pin at least one claim that identifies the code (declared per TEE in
    # verify.claims), or any code would pass.
    tee = ctx.evidence.tee
    tee_claims = declared(tee)
    if tee_claims is None:
        return None
    fields = tee_claims.pin_one_of
    references = ctx.policy.references(tee)
    pinned = [f for f in fields if f in references]
    expected = f"one of {', '.join(fields)} for {tee}"
    if tee_claims.pin_also:
        expected += f", with {', '.join(tee_claims.pin_also)}"
    if not pinned:
        return RuleResult(
            "reference-values", False, expected, pinned,
            f"policy has no reference {' or '.join(fields)} for {tee}: any code would pass, "
            "so none does")
    missing = [f for f in tee_claims.pin_also if f not in references]
    pinned += [f for f in tee_claims.pin_also if f in references]
    return _result(
        "reference-values", not missing, expected, pinned,
        f"policy pins {', '.join(pinned)} for {tee}",
        f"policy pins {', '.join(pinned)} for {tee} but not {', '.join(missing)}: "
        f"{' and '.join(fields)} alone leaves out code that {', '.join(missing)} measure, "
        "so any would pass and none does",
    )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:16]}…{text[-8:]}"


def _one_of(tee: str, key: str, claim: str) -> Callable[[Context], RuleResult | None]:
    def check(ctx: Context) -> RuleResult | None:
        if ctx.evidence.tee != tee or key not in ctx.policy.references(tee):
            return None
        expected = list(ctx.policy.references(tee)[key])
        actual = ctx.evidence.claims.get(claim)
        name = f"{tee}.{key}"
        if actual is None:
            return RuleResult(name, False, expected, None, f"evidence has no '{claim}' claim")
        actual_cmp = actual.lower() if isinstance(actual, str) else actual
        return _result(name, actual_cmp in expected, expected, actual,
                       f"{claim} matches the reference value",
                       f"{claim} {_short(actual)} is not a reference value of the policy")
    return check


def _minimum(tee: str, key: str, claim: str) -> Callable[[Context], RuleResult | None]:
    def check(ctx: Context) -> RuleResult | None:
        if ctx.evidence.tee != tee or key not in ctx.policy.references(tee):
            return None
        minimum = ctx.policy.references(tee)[key]
        actual = ctx.evidence.claims.get(claim)
        name = f"{tee}.{key}"
        if not isinstance(actual, int):
            return RuleResult(name, False, f">= {minimum}", actual,
                              f"evidence has no integer '{claim}' claim")
        return _result(name, actual >= minimum, f">= {minimum}", actual,
                       f"{claim} {actual} is at least {minimum}",
                       f"{claim} {actual} is below the policy minimum {minimum}")
    return check


def _snp_min_tcb(tee: str, component: str) -> Callable[[Context], RuleResult | None]:
    def check(ctx: Context) -> RuleResult | None:
        minimums = ctx.policy.references(tee).get("min_tcb", {})
        if ctx.evidence.tee != tee or component not in minimums:
            return None
        minimum = minimums[component]
        reported = ctx.evidence.claims.get("reported_tcb") or {}
        actual = reported.get(component) if isinstance(reported, dict) else None
        name = f"{tee}.min_tcb.{component}"
        if not isinstance(actual, int):
            return RuleResult(name, False, f">= {minimum}", None,
                              f"reported TCB has no '{component}' component")
        return _result(name, actual >= minimum, f">= {minimum}", actual,
                       f"reported TCB {component} SVN {actual} is at least {minimum}",
                       f"reported TCB {component} SVN {actual} is below the policy minimum "
                       f"{minimum}")
    return check


def _snp_policy_bit(tee: str, bit_name: str) -> Callable[[Context], RuleResult | None]:
    # Reads the guest policy bits verify decoded (the ``policy_flags`` claim, as the claims
    # declaration names them); the policy's aliases were resolved when it loaded.
    def check(ctx: Context) -> RuleResult | None:
        required = ctx.policy.references(tee).get("policy", {})
        if ctx.evidence.tee != tee or bit_name not in required:
            return None
        name = f"{tee}.policy.{bit_name}"
        flags = ctx.evidence.claims.get("policy_flags")
        actual = flags.get(bit_name) if isinstance(flags, dict) else None
        if not isinstance(actual, bool):
            # policy_flags is verify's decoding of the report's integer policy word.
            return RuleResult(name, False, required[bit_name], None,
                              "evidence has no integer 'policy' claim")
        state = "set" if actual else "clear"
        return _result(name, actual == required[bit_name], required[bit_name], actual,
                       f"guest policy bit {bit_name} is {state} as required",
                       f"guest policy bit {bit_name} is {state}; the policy requires "
                       f"{'set' if required[bit_name] else 'clear'}")
    return check


def _pcr(tee: str, index: int) -> Callable[[Context], RuleResult | None]:
    # The vTPM's PCRs measure the guest's boot chain (firmware, boot loader, kernel, command
    # line): on Azure they, not the paravisor's hardware measurement, identify the guest.
    key = str(index)

    def check(ctx: Context) -> RuleResult | None:
        expected = ctx.policy.references(tee).get("pcrs", {}).get(key)
        if ctx.evidence.tee != tee or expected is None:
            return None
        name = f"{tee}.pcrs.{index}"
        pcrs = ctx.evidence.claims.get("pcrs")
        actual = pcrs.get(key) if isinstance(pcrs, dict) else None
        if not isinstance(actual, str):
            return RuleResult(name, False, list(expected), None,
                              f"evidence has no PCR {index} (the TPM quote did not select it)")
        return _result(name, actual.lower() in expected, list(expected), actual,
                       f"PCR {index} matches the reference value",
                       f"PCR {index} {_short(actual)} is not a reference value of the policy")
    return check


def _vm_configuration(tee: str, flag: str) -> Callable[[Context], RuleResult | None]:
    def check(ctx: Context) -> RuleResult | None:
        required = ctx.policy.references(tee).get("vm_configuration", {})
        if ctx.evidence.tee != tee or flag not in required:
            return None
        name = f"{tee}.vm_configuration.{flag}"
        config = ctx.evidence.claims.get("vm_configuration")
        actual = config.get(flag) if isinstance(config, dict) else None
        want = required[flag]
        if not isinstance(actual, bool):
            return RuleResult(name, False, want, None,
                              f"the HCL vm-configuration does not state {flag}")
        state = "on" if actual else "off"
        return _result(name, actual == want, want, actual,
                       f"vm-configuration {flag} is {state} as required",
                       f"vm-configuration {flag} is {state}; the policy requires "
                       f"{'on' if want else 'off'}")
    return check


def _report_data(ctx: Context) -> RuleResult | None:
    expected = ctx.expected_report_data
    if expected is None:
        return None
    actual = ctx.evidence.report_data
    # A TPM quote's extraData (az-*) carries the binding's 48-byte prefix: binding_matches.
    ok = binding_matches(actual, expected) or hmac.compare_digest(bytes(actual), bytes(expected))
    return _result("report-data", ok, expected.hex(), actual.hex(),
                   "report data binds this session's nonce and key",
                   "report data does not match this session's nonce and key (replayed "
                   "evidence, or evidence bound to another key)")


def _sealed_session(ctx: Context) -> RuleResult | None:
    if ctx.policy.sealed_session != "required":
        return None
    bound = bool(ctx.session_key)
    return _result("sealed-session", bound, "a sealed session key bound in the evidence",
                   "session key bound" if bound else None,
                   "the kernel is locked to a sealed session; only that frontend can drive "
                   "it and read its outputs",
                   "the policy requires a sealed session (sealed_session: required) and this "
                   "kernel's evidence binds no session key: whoever holds its connection file "
                   "could run code in it and read its outputs")


def _freshness(ctx: Context) -> RuleResult | None:
    issued = ctx.evidence.evidence_time
    if issued is None:
        return None
    limit = ctx.policy.max_evidence_age_s
    age = (ctx.now - issued).total_seconds()
    expected = f"at most {limit} s old"
    if age < -FUTURE_SKEW_S:
        return RuleResult("freshness", False, expected, issued.isoformat(),
                          f"evidence is dated {-age:.0f} s in the future "
                          f"({issued.isoformat()}, now {ctx.now.isoformat()})")
    return _result("freshness", age <= limit, expected, f"{max(age, 0):.0f} s old",
                   f"evidence is {max(age, 0):.0f} s old",
                   f"evidence is {age:.0f} s old; the policy accepts at most {limit} s")


def _effect(claim: str, passed: int, warning: int, failed: int) -> tuple[VectorEffect, ...]:
    return (VectorEffect(claim, passed, warning, failed),)


# (tee, policy key, claim name, kind, trustworthiness claim it informs)
REFERENCE_FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("sgx", "mrenclave", "mrenclave", "one_of", "executables"),
    ("sgx", "mrsigner", "mrsigner", "one_of", "executables"),
    ("sgx", "isvprodid", "isvprodid", "one_of", "configuration"),
    ("sgx", "min_isvsvn", "isvsvn", "minimum", "executables"),
    ("tdx", "mrtd", "mrtd", "one_of", "executables"),
    ("tdx", "rtmr0", "rtmr0", "one_of", "executables"),
    ("tdx", "rtmr1", "rtmr1", "one_of", "executables"),
    ("tdx", "rtmr2", "rtmr2", "one_of", "executables"),
    ("tdx", "rtmr3", "rtmr3", "one_of", "executables"),
    ("tdx", "mrconfigid", "mrconfigid", "one_of", "configuration"),
    ("snp", "measurement", "measurement", "one_of", "executables"),
    ("snp", "host_data", "host_data", "one_of", "configuration"),
    ("snp", "vmpl", "vmpl", "one_of", "configuration"),
    ("az-snp-vtpm", "measurement", "measurement", "one_of", "executables"),
    ("az-snp-vtpm", "host_data", "host_data", "one_of", "configuration"),
    ("az-tdx-vtpm", "mrtd", "mrtd", "one_of", "executables"),
    ("az-tdx-vtpm", "rtmr0", "rtmr0", "one_of", "executables"),
    ("az-tdx-vtpm", "rtmr1", "rtmr1", "one_of", "executables"),
    ("az-tdx-vtpm", "rtmr2", "rtmr2", "one_of", "executables"),
    ("az-tdx-vtpm", "rtmr3", "rtmr3", "one_of", "executables"),
    ("az-tdx-vtpm", "mrconfigid", "mrconfigid", "one_of", "configuration"),
    ("simulated", "measurement", "measurement", "one_of", "executables"),
)
_KINDS = {"one_of": _one_of, "minimum": _minimum}
# AR4SI codes per claim for (pass, fail): approved / unrecognized runtime; approved /
# unsupportable configuration.
_FIELD_CODES = {"executables": (2, 33), "configuration": (2, 96)}


def _reference_rules() -> tuple[Rule, ...]:
    rules = []
    for tee, key, claim, kind, vector_claim in REFERENCE_FIELDS:
        passed, failed = _FIELD_CODES[vector_claim]
        rules.append(Rule(f"{tee}.{key}", _KINDS[kind](tee, key, claim),
                          _effect(vector_claim, passed, passed, failed)))
    return tuple(rules)


SNP_TCB_COMPONENTS = ("bootloader", "tee", "snp", "microcode", "fmc")

RULES: tuple[Rule, ...] = (
    Rule("verified", _verified, (VectorEffect("hardware", 2, 2, 2),
                                 VectorEffect("runtime-opaque", 2, 2, 2))),
    Rule("tee-allowed", _tee_allowed),
    Rule("simulation", _simulation, _effect("hardware", 2, 32, 97)),
    Rule("debug", _debug, _effect("configuration", 2, 32, 96)),
    Rule("tcb-status", _tcb_status, _effect("hardware", 2, 32, 96)),
    Rule("reference-values", _reference_present, _effect("executables", 2, 2, 33)),
    *_reference_rules(),
    *(Rule(f"{t}.min_tcb.{c}", _snp_min_tcb(t, c), _effect("hardware", 2, 2, 32))
      for t in SNP_POLICY_TEES for c in SNP_TCB_COMPONENTS),
    *(Rule(f"{t}.policy.{b}", _snp_policy_bit(t, b), _effect("configuration", 2, 2, 96))
      for t in SNP_POLICY_TEES for b in SNP_POLICY_FLAGS),
    *(Rule(f"{t}.pcrs.{i}", _pcr(t, i), _effect("executables", 2, 2, 33))
      for t in VTPM_TEES for i in PCR_INDICES),
    *(Rule(f"{t}.vm_configuration.{f}", _vm_configuration(t, f),
           _effect("configuration", 2, 2, 96))
      for t in VTPM_TEES for f in VM_CONFIGURATION_FLAGS),
    Rule("report-data", _report_data, _effect("instance-identity", 2, 2, 96)),
    Rule("sealed-session", _sealed_session),
    Rule("freshness", _freshness),
)
