"""The attestation report ``wb.attest()`` returns, and how a notebook shows it.

Everything shown comes from the broker's EAR token after its signature was checked against
the broker's published keys, plus what only the kernel knows (the nonce's arrival time, the
raw evidence it sent). The lab extension's server side re-verifies the token itself; the
display here is for reading, not for trusting.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench.attestation.appraise.appraise import EarStatus
from workbench.attestation.appraise.ear import Submod, TokenInvalid, submod
from workbench.attestation.tee.binding import binding_matches, jwk_thumbprint, report_data_for
from workbench.attestation.verify.claims import declared
from workbench.protocol.claims import RESOURCES_CLAIM
from workbench.protocol.comm import ATTESTATION_MIME_TYPE, COMM_VERSION
from workbench.sealed.certificate import CertificateInvalid, SessionCertificate

MIME_TYPE = ATTESTATION_MIME_TYPE

STATUS_COLOURS = {"affirming": "#1a7f37", "warning": "#9a6700", "contraindicated": "#cf222e"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _from_epoch(value: Any) -> str | None:
    return _iso(datetime.fromtimestamp(value, UTC)) if isinstance(value, int) else None


@dataclass
class AttestationReport:
    runtime: str
    broker: str
    token: str
    # The verified token's claims (EarClaims), read by name: the report shows what they say.
    claims: Mapping[str, Any]
    evidence: bytes
    nonce: str
    nonce_issued_at: datetime
    tee_pubkey: dict[str, Any]
    transport_key: bytes = b""
    # The sealed session the evidence binds (b"": not locked), and the analyst's
    # certificate of it (None: not certified).
    session_key: bytes = b""
    session_certificate: dict[str, Any] | None = None
    # The certificates the platform gave with the evidence (SEV-SNP: the VCEK), DER.
    certificates: tuple[bytes, ...] = ()
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    # -- what the token says ----------------------------------------------------------------

    @property
    def _submod(self) -> Submod | None:
        try:
            return submod(self.claims)
        except TokenInvalid:
            return None

    @property
    def _evidence(self) -> dict[str, Any]:
        appraisal = self._submod
        return (appraisal.annotated_evidence if appraisal is not None else None) or {}

    @property
    def tee(self) -> str:
        return str(self._evidence.get("tee", ""))

    @property
    def simulated(self) -> bool:
        return bool(self._evidence.get("simulated")) or self.tee == "simulated"

    @property
    def evidence_claims(self) -> dict[str, Any]:
        return dict(self._evidence.get("claims") or {})

    @property
    def status(self) -> str:
        appraisal = self._submod
        return appraisal.status.value if appraisal is not None else EarStatus.NONE.value

    @property
    def policy_id(self) -> str | None:
        appraisal = self._submod
        return appraisal.policy_id if appraisal is not None else None

    @property
    def rules(self) -> list[dict[str, Any]]:
        appraisal = self._submod
        return appraisal.rule_list if appraisal is not None else []

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.claims.get(RESOURCES_CLAIM) or {})

    def identity(self, what: str) -> Any:
        """The claim that is ``what`` (measurement, signer, svn) for this TEE (verify.claims)."""
        tee_claims = declared(self.tee)
        name = tee_claims.role(what) if tee_claims else None
        return self.evidence_claims.get(name) if name else None

    @property
    def bound(self) -> bool:
        """Does the evidence's report data bind this nonce and this kernel's public key?"""
        reported = self._evidence.get("report_data")
        if not isinstance(reported, str):
            return False
        try:
            certificate = self.session_certificate
            digest = SessionCertificate.from_json(certificate).digest() if certificate else b""
            expected = report_data_for(self.nonce, self.tee_pubkey, self.transport_key,
                                       self.session_key, digest)
            return binding_matches(bytes.fromhex(reported), expected)
        except (ValueError, CertificateInvalid):
            return False

    @property
    def nonce_age_s(self) -> float:
        return max(0.0, (self.created_at - self.nonce_issued_at).total_seconds())

    def verdict_for(self, resource: str) -> dict[str, Any] | None:
        return self.resources.get(resource)

    # -- messages -----------------------------------------------------------------------------

    def evidence_message(self) -> dict[str, Any]:
        """The comm's ``evidence`` message fields (docs/comm-protocol.md)."""
        extra: dict[str, Any] = {"transport_key": self.transport_key.hex()} \
            if self.transport_key else {}
        if self.session_key:
            extra["session_key"] = self.session_key.hex()
        if self.session_certificate is not None:
            extra["session_certificate"] = self.session_certificate
        if self.certificates:
            extra["certs"] = [base64.b64encode(c).decode() for c in self.certificates]
        return {
            **extra,
            "evidence": base64.b64encode(self.evidence).decode(),
            "tee": self.tee,
            "claims": self.evidence_claims,
            "nonce": self.nonce,
            "nonce_issued_at": _iso(self.nonce_issued_at),
            "token": self.token,
            "broker": self.broker,
            "tee_pubkey": self.tee_pubkey,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "tee": self.tee,
            "simulated": self.simulated,
            "status": self.status,
            "policy_id": self.policy_id,
            "measurement": self.identity("measurement"),
            "signer": self.identity("signer"),
            "svn": self.identity("svn"),
            "debug": self.evidence_claims.get("debug"),
            "tcb_status": self._evidence.get("tcb_status"),
            "binding": {
                "bound": self.bound,
                "report_data": self._evidence.get("report_data"),
                "tee_pubkey_thumbprint": base64.urlsafe_b64encode(
                    jwk_thumbprint(self.tee_pubkey)).rstrip(b"=").decode(),
                "transport_key": self.transport_key.hex(),
                "nonce_age_s": round(self.nonce_age_s, 3),
            },
            "rules": self.rules,
            "resources": self.resources,
            "issuer": self.claims.get("iss"),
            "issued_at": _from_epoch(self.claims.get("iat")),
            "expires_at": _from_epoch(self.claims.get("exp")),
        }

    def to_json(self) -> dict[str, Any]:
        """The ``application/vnd.workbench.attestation+json`` payload."""
        return {"v": COMM_VERSION, "type": "attestation-report",
                **self.evidence_message(), "summary": self.summary()}

    # -- display -----------------------------------------------------------------------------

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {MIME_TYPE: self.to_json(), "text/html": self._html(), "text/plain": str(self)}

    def _lines(self) -> list[tuple[str, str]]:
        summary = self.summary()
        binding = summary["binding"]
        tee = f"{self.tee} (SIMULATED: not hardware-protected)" if self.simulated else self.tee
        svn = summary["svn"]
        return [
            ("runtime", self.runtime),
            ("TEE", tee),
            ("measurement", str(summary["measurement"])),
            ("signer", str(summary["signer"])),
            ("security version", "n/a" if svn is None else str(svn)),
            ("debug", str(summary["debug"])),
            ("TCB status", str(summary["tcb_status"] or "n/a")),
            ("binding", ("report data binds the broker's nonce and this kernel's key"
                         if binding["bound"] else "NOT BOUND to this session")),
            ("nonce age", f"{binding['nonce_age_s']:.1f} s"),
            ("verdict", f"{self.status} (policy {self.policy_id})"),
            ("token issuer", f"{summary['issuer']} (expires {summary['expires_at']})"),
        ]

    def __str__(self) -> str:
        out = [f"Attestation report ({self.status})"]
        out += [f"  {k:<17} {v}" for k, v in self._lines()]
        for rule in self.rules:
            mark = "pass" if rule.get("passed") else "FAIL"
            out.append(f"  [{mark}] {rule.get('name')}: {rule.get('reason')}")
        for resource, verdict in sorted(self.resources.items()):
            failed = ", ".join(verdict.get("failed_rules") or []) or "none failed"
            out.append(f"  resource {resource}: {verdict.get('status')} ({failed})")
        return "\n".join(out)

    __repr__ = __str__

    def _html(self) -> str:
        colour = STATUS_COLOURS.get(self.status, "#57606a")
        badge = (f"<span style='background:{colour};color:white;padding:2px 8px;"
                 f"border-radius:8px'>{html.escape(self.status)}</span>")
        if self.simulated:
            badge += (" <span style='background:#cf222e;color:white;padding:2px 8px;"
                      "border-radius:8px'>SIMULATED TEE</span>")
        cell = "style='text-align:left;font-family:monospace;word-break:break-all'"
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td {cell}>{html.escape(v)}</td></tr>" for k, v in self._lines())
        rules = "".join(
            f"<tr><td>{'✓' if r.get('passed') else '✗'}</td>"
            f"<td style='text-align:left'>{html.escape(str(r.get('name')))}</td>"
            f"<td style='text-align:left'>{html.escape(str(r.get('reason')))}</td></tr>"
            for r in self.rules)
        resources = "".join(
            f"<tr><td style='text-align:left'>{html.escape(p)}</td>"
            f"<td>{html.escape(str(v.get('status')))}</td>"
            f"<td style='text-align:left'>{html.escape(', '.join(v.get('failed_rules') or []))}"
            "</td></tr>" for p, v in sorted(self.resources.items()))
        return (f"<div><p><b>Attestation report</b> {badge}</p><table>{rows}</table>"
                f"<p><b>Policy rules</b></p><table>{rules}</table>"
                f"<p><b>Resources named</b></p><table>{resources}</table></div>")
