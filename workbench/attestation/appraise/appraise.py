"""Apply a policy to verified evidence: every rule runs, and every outcome is reported.

The verdict (an EAR status) follows from the rules: any failed rule makes it
``contraindicated``; otherwise any pass with a caveat (simulation allowed, an accepted but
not up-to-date TCB, debug allowed) makes it ``warning``; otherwise ``affirming``. The
AR4SI trustworthiness vector is derived from the same results through the rules' table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.attestation.appraise.policy import Policy
from workbench.attestation.appraise.rules import RULES, Context, RuleResult
from workbench.attestation.verify.result import VerifiedEvidence

TRUST_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)


class EarStatus(enum.Enum):
    """EAR trust tiers (draft-ietf-rats-ear), with their AR4SI tier floor as ``code``."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def code(self) -> int:
        return _TIER_CODES[self]

    @classmethod
    def of_claim(cls, value: int) -> EarStatus:
        """The tier an AR4SI claim value belongs to (-1, 0, 1: none; 2-31, ...: affirming)."""
        magnitude = abs(value)
        if magnitude <= 1:
            return cls.NONE
        if magnitude < 32:
            return cls.AFFIRMING
        if magnitude < 96:
            return cls.WARNING
        return cls.CONTRAINDICATED


_TIER_CODES = {
    EarStatus.NONE: 0,
    EarStatus.AFFIRMING: 2,
    EarStatus.WARNING: 32,
    EarStatus.CONTRAINDICATED: 96,
}
_TIER_ORDER = [EarStatus.NONE, EarStatus.AFFIRMING, EarStatus.WARNING, EarStatus.CONTRAINDICATED]


@dataclass(frozen=True)
class Appraisal:
    policy_id: str
    tee: str
    simulated: bool
    status: EarStatus
    rules: list[RuleResult]
    trust_vector: dict[str, int]
    appraised_at: datetime

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy_id": self.policy_id,
            "tee": self.tee,
            "simulated": self.simulated,
            "status": self.status.value,
            "passed": self.passed,
            "rules": [r.to_json() for r in self.rules],
            "trust_vector": dict(self.trust_vector),
            "appraised_at": self.appraised_at.isoformat(),
        }


def _severity(value: int) -> tuple[int, int]:
    return _TIER_ORDER.index(EarStatus.of_claim(value)), abs(value)


def _status(results: list[RuleResult]) -> EarStatus:
    if any(not r.passed for r in results):
        return EarStatus.CONTRAINDICATED
    if any(r.warning for r in results):
        return EarStatus.WARNING
    return EarStatus.AFFIRMING


def appraise(
    evidence: VerifiedEvidence,
    policy: Policy,
    *,
    now: datetime,
    expected_report_data: bytes | None = None,
    session_key: bytes = b"",
) -> Appraisal:
    """Run every rule of ``RULES`` against ``evidence``; never stops at the first failure.

    ``session_key``: the sealed-session key the evidence binds (checked by the caller
    through ``expected_report_data``), for policies that require a sealed session."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    ctx = Context(evidence, policy, now, expected_report_data, session_key)
    results: list[RuleResult] = []
    vector = dict.fromkeys(TRUST_CLAIMS, 0)
    for rule in RULES:
        result = rule.check(ctx)
        if result is None:
            continue
        results.append(result)
        for effect in rule.effects:
            if not result.passed:
                code = effect.failed
            elif result.warning:
                code = effect.warning
            else:
                code = effect.passed
            if _severity(code) > _severity(vector[effect.claim]):
                vector[effect.claim] = code
    return Appraisal(
        policy_id=policy.id,
        tee=evidence.tee,
        simulated=evidence.simulated,
        status=_status(results),
        rules=results,
        trust_vector=vector,
        appraised_at=now,
    )
