"""Judging a session's verified evidence against each resource's policy.

At attest the broker appraises the evidence against the policy of every resource the
session named (its token states the worst verdict and one per resource); at release it
needs the same appraisal again, so each is kept per (session, policy text) and a replica
that never saw the attest computes it as of the attestation time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workbench.attestation.appraise import Appraisal, EarStatus, Policy, appraise, load_policy
from workbench.attestation.verify.result import VerifiedEvidence
from workbench.kbs import release_rules
from workbench.kbs.caches import BrokerCaches
from workbench.kbs.config import BrokerConfig
from workbench.kbs.errors import KbsError
from workbench.kbs.identity import NOBODY, Presented
from workbench.kbs.records import Session
from workbench.kbs.registry import Registry, ResourceInfo, parse_policy

if TYPE_CHECKING:
    from datetime import datetime


# Used for the attest token when the session names no resources and no policy is configured.
DEFAULT_ATTESTATION_POLICY = {
    "id": "kbs-default-attestation",
    "name": "hardware TEE, no debug, up-to-date TCB (token only; releases use each "
            "resource's own policy)",
    "allowed_tee": ["sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm"],
}
# Worse verdicts later: the token carries the worst of the named resources' appraisals.
_STATUS_ORDER = [EarStatus.NONE, EarStatus.AFFIRMING, EarStatus.WARNING,
                 EarStatus.CONTRAINDICATED]
# A resource's verdict in the token when the session named a path nobody registered.
UNKNOWN_RESOURCE = {"status": "unknown-resource"}


def token_policy(config: BrokerConfig) -> Policy:
    """The policy the token is appraised under when the session names no resource."""
    if config.attestation_policy:
        return load_policy(config.attestation_policy)
    policy, _ = parse_policy(DEFAULT_ATTESTATION_POLICY)
    return policy


def rule_json(appraisal: Appraisal) -> list[dict[str, Any]]:
    return [{"name": r.name, "expected": r.expected, "actual": r.actual, "reason": r.reason}
            for r in appraisal.failed_rules]


class Appraiser:
    def __init__(self, registry: Registry, caches: BrokerCaches, default_policy: Policy
                 ) -> None:
        self._registry = registry
        self._caches = caches
        self._default_policy = default_policy

    def policy(self, text: str) -> Policy:
        found = self._caches.policies.get(text)
        if found is None:
            found, _ = parse_policy(json.loads(text))
            self._caches.policies.put(text, found)
        return found

    def for_token(self, session_id: str, named: tuple[str, ...], evidence: VerifiedEvidence,
                  expected: bytes, at: datetime, presented: Presented = NOBODY,
                  session_key: bytes = b"") -> tuple[Appraisal, dict[str, Any]]:
        """The token's appraisal (worst over the named resources) and per-resource verdicts
        (which also count the resource's release rules for the requester, if any fail)."""
        verdicts: dict[str, Any] = {}
        worst: Appraisal | None = None
        for path in named:
            try:
                info, _ = self._registry.cached(path)
            except KbsError:
                verdicts[path] = dict(UNKNOWN_RESOURCE)
                continue
            result = appraise(evidence, self.policy(info.policy_text), now=at,
                              expected_report_data=expected, session_key=session_key)
            self._caches.appraisals.put((session_id, info.policy_text), result)
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
                             expected_report_data=expected, session_key=session_key)
        return worst, verdicts

    def for_release(self, session: Session, info: ResourceInfo) -> Appraisal:
        """The session's evidence under ``info``'s policy, as of its attestation."""
        key = (session.id, info.policy_text)
        cached = self._caches.appraisals.get(key)
        if cached is None:
            cached = appraise(session.evidence, self.policy(info.policy_text),
                              now=session.attested_at, expected_report_data=session.report_data,
                              session_key=session.session_key)
            self._caches.appraisals.put(key, cached)
        return cached
