"""The verdict on a kernel, as a typed value, and its JSON (``verdict.schema.json``).

The lab server answers ``workbench/verify`` with ``Verdict.to_json()``; the TypeScript types
of the lab extension are generated from the schema that JSON is tested against
(``workbench.verdict.typescript``), so the two sides cannot drift apart silently. A verdict
also reads like its JSON (``verdict["state"]``), for code that walks it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from workbench.attestation.appraise.ear import JsonView
from workbench.attestation.verify.result import VerifiedEvidence

VERDICT_VERSION = 1


class TrustState(StrEnum):
    """Worst first: ``refused`` (something checked and was wrong), ``unverified``
    (something could not be checked), then ``simulated`` or ``verified``."""

    VERIFIED = "verified"
    SIMULATED = "simulated"
    UNVERIFIED = "unverified"
    REFUSED = "refused"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def allows_release(self) -> bool:
        return self in (TrustState.VERIFIED, TrustState.SIMULATED)


_SEVERITY = {TrustState.VERIFIED: 0, TrustState.SIMULATED: 0, TrustState.UNVERIFIED: 1,
             TrustState.REFUSED: 2}


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class BrokerInfo:
    url: str
    key_source: str
    kid: str | None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "key_source": self.key_source, "kid": self.kid}


@dataclass(frozen=True)
class TrustClaim:
    code: int
    meaning: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "meaning": self.meaning}


@dataclass(frozen=True)
class TokenSummary:
    issuer: str | None
    issued_at: str | None
    expires_at: str | None
    expired: bool
    age_s: int
    nonce: str | None
    kid: str | None
    verifier: dict[str, str] | None
    trust_vector: dict[str, TrustClaim]

    def to_json(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "issued_at": self.issued_at,
                "expires_at": self.expires_at, "expired": self.expired, "age_s": self.age_s,
                "nonce": self.nonce, "kid": self.kid, "verifier": self.verifier,
                "trust_vector": {k: v.to_json() for k, v in self.trust_vector.items()}}


@dataclass(frozen=True)
class AppraisalSummary:
    status: str | None
    policy_id: str | None
    rules: tuple[dict[str, Any], ...]
    failed_rules: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "policy_id": self.policy_id, "rules": list(self.rules),
                "failed_rules": list(self.failed_rules)}


@dataclass(frozen=True)
class BindingResult:
    ok: bool
    expected: str
    actual: str

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True)
class TransportNote:
    """The transport key the evidence binds next to the one the checker's connection uses."""

    source: str
    bound: str
    server_key: str | None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "bound": self.bound, "server_key": self.server_key}


def _json(value: Any) -> Any:
    return None if value is None else value.to_json()


@dataclass(frozen=True, eq=False)
class Verdict(JsonView):
    state: TrustState
    reason: str
    checked_at: str
    checks: tuple[CheckOutcome, ...]
    broker: BrokerInfo
    kernel_key: str | None = None
    token: TokenSummary | None = None
    appraisal: AppraisalSummary | None = None
    evidence: VerifiedEvidence | None = None
    binding: BindingResult | None = None
    transport: TransportNote | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    v: int = VERDICT_VERSION

    @property
    def allows_release(self) -> bool:
        return self.state.allows_release

    def check(self, name: str) -> CheckOutcome | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "state": self.state.value,
            "reason": self.reason,
            "checked_at": self.checked_at,
            "checks": [c.to_json() for c in self.checks],
            "broker": self.broker.to_json(),
            "kernel_key": self.kernel_key,
            "token": _json(self.token),
            "appraisal": _json(self.appraisal),
            "evidence": _json(self.evidence),
            "binding": _json(self.binding),
            "transport": _json(self.transport),
            "resources": self.resources,
        }

    @cached_property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        """The JSON, for reading the verdict by name (``verdict["state"]``)."""
        return self.to_json()
