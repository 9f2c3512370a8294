"""What verification produces: typed, so appraisal and the UI never parse strings.

A verifier returns :class:`VerifiedEvidence` only when every cryptographic check passed;
otherwise it raises :class:`EvidenceRejected` naming the first failed check. Claims use
plain JSON types (hex strings for digests, ints, bools) so they serialise unchanged into
EAR annotated evidence, the CLI's ``--json`` and the lab extension.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The check of every verifier that asks a provider (the collateral service) for collateral
# the evidence does not carry; its refusals name the source.
CHECK_COLLATERAL = "collateral"


@dataclass(frozen=True)
class Check:
    """One verification step, for display: ``name`` is stable, ``detail`` is for people."""

    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class CertSummary:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class VerifiedEvidence:
    """Evidence whose signatures, chain and (when given) collateral all checked out.

    ``tee`` is one of ``sgx``, ``tdx``, ``snp``, ``simulated``. ``claims`` holds the
    measured values appraisal compares against reference values (see docs/attestation.md
    for the names per TEE). ``tcb_status`` is None when no collateral was supplied.
    """

    tee: str
    claims: dict[str, Any]
    report_data: bytes
    checks: tuple[Check, ...]
    chain: tuple[CertSummary, ...] = ()
    tcb_status: str | None = None
    advisory_ids: tuple[str, ...] = ()
    simulated: bool = False
    evidence_time: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "tee": self.tee,
            "simulated": self.simulated,
            "claims": self.claims,
            "report_data": self.report_data.hex(),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "checks": [c.to_json() for c in self.checks],
            "chain": [c.to_json() for c in self.chain],
            "evidence_time": self.evidence_time.isoformat() if self.evidence_time else None,
        }


class EvidenceRejected(Exception):
    """A cryptographic check failed: the evidence cannot be trusted at all."""

    def __init__(self, check: str, reason: str, checks: tuple[Check, ...] = ()) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason
        self.checks = checks
