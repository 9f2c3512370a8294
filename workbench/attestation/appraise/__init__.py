"""Policies, appraisal rules and EAR attestation results.

``appraise`` imports ``verify`` and ``formats``, never the other way round.
"""

from workbench.attestation.appraise.appraise import Appraisal, EarStatus, appraise
from workbench.attestation.appraise.policy import Policy, PolicyError, load_policy
from workbench.attestation.appraise.rules import RuleResult

__all__ = [
    "Appraisal",
    "EarStatus",
    "Policy",
    "PolicyError",
    "RuleResult",
    "appraise",
    "load_policy",
]
