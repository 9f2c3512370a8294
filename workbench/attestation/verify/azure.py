"""Verify Azure confidential VM evidence (Trustee's ``az-snp-vtpm`` and ``az-tdx-vtpm``).

The chain of trust, each link a named check:

1. the hardware report: SEV-SNP through ``verify.snp`` (VCEK from the evidence or ``certs``,
   ASK and ARK pinned); TDX through ``verify.dcap`` on the TD quote the evidence carries,
   then ``td-quote-binding`` (the quote body repeats the HCL report's TD report). A TD
   report alone is MACed for the local CPU only: nothing in it is rooted in Intel's keys,
   so it is refused (``td-quote``);
2. ``hcl-vmpl`` (SEV-SNP): the report was requested at VMPL 0, by the paravisor; the
   guest runs at a less privileged VMPL, and a report it asked for could bind variable
   data (an attestation key) of its own making;
3. ``var-data-binding``: report_data[0:hash size] is the HCL's hash of the variable data,
   so the runtime data (attestation key, vm-configuration, user-data) is the hardware's;
4. ``attestation-key``, ``tpm-quote-signature``, ``tpm-nonce``, ``pcr-digest``: the TPM
   quote is signed by that attestation key, carries the verifier's nonce, and its PCR
   digest covers the PCR values given (``verify.tpm_quote``).

The HCL report is written once per boot; freshness and the session binding ride in the
quote's extraData, which is therefore what ``VerifiedEvidence.report_data`` holds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workbench.attestation.formats import azure_hcl_offsets as hcl_off
from workbench.attestation.formats.azure_evidence import (
    AzureEvidence,
    parse_azure_document,
    parse_azure_evidence,
)
from workbench.attestation.formats.azure_hcl import HclReport
from workbench.attestation.verify.result import Check, EvidenceRejected, VerifiedEvidence
from workbench.attestation.verify.tpm_quote import CHECK_AK, attestation_key, verify_tpm_quote

CHECK_VAR_DATA = "var-data-binding"
CHECK_VMPL = "hcl-vmpl"
# The paravisor (HCL) runs at VMPL 0; only a report it requested speaks for the HCL data.
HCL_VMPL = 0
CHECK_TD_QUOTE = "td-quote"
CHECK_TD_BINDING = "td-quote-binding"
TD_REPORT_NOT_A_QUOTE = (
    "the evidence carries the HCL report's TD report but no TD quote: a TD report is MACed "
    "for the local CPU only, so nothing in it is rooted in Intel's keys; give az-tdx-vtpm "
    "evidence with its td_quote"
)


def _fail(name: str, reason: str, done: list[Check]) -> EvidenceRejected:
    return EvidenceRejected(name, reason, (*done, Check(name, False, reason)))


def var_data_binding(hcl: HclReport) -> Check:
    """Whether report_data starts with the HCL's hash of the variable data (raises if not)."""
    digest = hashlib.new(hcl.hash_type, hcl.variable_data).digest()
    bound = hcl.report_data[:hcl.hash_size]
    if not hmac.compare_digest(digest, bound):
        raise EvidenceRejected(
            CHECK_VAR_DATA,
            f"the {hcl.report_type.upper()} report's report_data[0:{hcl.hash_size}] "
            f"{bound.hex()} is not the {hcl.hash_type.upper()} of the variable data "
            f"({digest.hex()}): the variable data (attestation key, vm-configuration) was "
            "edited or belongs to another report",
        )
    return Check(CHECK_VAR_DATA, True, f"report_data[0:{hcl.hash_size}] is the "
                 f"{hcl.hash_type.upper()} of the {len(hcl.variable_data)}-byte variable data")


def hcl_vmpl(hardware: VerifiedEvidence) -> Check:
    """Whether the SEV-SNP report was requested at the paravisor's VMPL (raises if not)."""
    vmpl = hardware.claims.get("vmpl")
    if vmpl != HCL_VMPL:
        raise EvidenceRejected(
            CHECK_VMPL,
            f"the SEV-SNP report was requested at VMPL {vmpl}, not {HCL_VMPL}: only the "
            "paravisor's report vouches for the HCL variable data; a guest at a less "
            "privileged VMPL could bind an attestation key of its own")
    return Check(CHECK_VMPL, True, f"the SEV-SNP report was requested at VMPL {HCL_VMPL} "
                 "(the paravisor)")


def _snp(evidence: AzureEvidence, now: datetime, certs: Sequence[bytes],
         collateral: Any) -> VerifiedEvidence:
    from workbench.attestation.verify.snp import verify_report

    assert evidence.hcl.snp is not None
    supplied = [evidence.vcek] if evidence.vcek else []
    return verify_report(evidence.hcl.snp, now=now, certs=[*supplied, *certs],
                         collateral=collateral)


def _td_fields_differ(evidence: AzureEvidence, body: Any) -> list[str]:
    td = evidence.hcl.td
    assert td is not None
    names = [name for name, _, _ in hcl_off.TD_REPORT_FIELDS]
    return [n for n in names if getattr(body, n, None) != getattr(td, n)]


def _tdx(evidence: AzureEvidence, now: datetime, collateral: Any,
         done: list[Check]) -> VerifiedEvidence:
    if evidence.td_quote is None:
        raise _fail(CHECK_TD_QUOTE, TD_REPORT_NOT_A_QUOTE, done)
    from workbench.attestation.formats.dcap import parse_quote
    from workbench.attestation.verify.dcap import verify_quote

    verified = verify_quote(evidence.td_quote, now=now, collateral=collateral)
    if verified.tee != "tdx":
        raise _fail(CHECK_TD_QUOTE, f"td_quote is an {verified.tee.upper()} quote, not TDX",
                    [*done, *verified.checks])
    differing = _td_fields_differ(evidence, parse_quote(evidence.td_quote).body)
    if differing:
        raise _fail(CHECK_TD_BINDING, "the TD quote was not made from the HCL report's TD "
                    f"report: {', '.join(differing)} differ", [*done, *verified.checks])
    return verified


def _claims(evidence: AzureEvidence, hardware: VerifiedEvidence) -> dict[str, Any]:
    runtime = evidence.hcl.runtime
    flags = {k: v for k, v in runtime.flags.items() if v is not None}
    return {
        **hardware.claims,
        "pcrs": {str(index): value.hex() for index, value in evidence.quote.pcr_values.items()},
        "vm_configuration": flags,
        **runtime.values,
        "user_data": runtime.user_data.lower() if runtime.user_data else None,
        "tpm_nonce": evidence.quote.attest.extra_data.hex(),
        "ak_pub": hashlib.sha256(f"{runtime.ak_pub.n}.{runtime.ak_pub.e}".encode()).hexdigest(),
        "hcl_report_version": evidence.hcl.version,
        "evidence_version": evidence.version,
    }


def _parse(evidence: bytes | dict[str, Any] | AzureEvidence) -> AzureEvidence:
    if isinstance(evidence, AzureEvidence):
        return evidence
    if isinstance(evidence, dict):
        return parse_azure_document(evidence)
    return parse_azure_evidence(evidence)


def verify_azure_evidence(
    evidence: bytes | dict[str, Any] | AzureEvidence,
    *,
    now: datetime,
    nonce: bytes | None = None,
    certs: Sequence[bytes] = (),
    collateral: Any = None,
    snp_collateral: Any = None,
) -> VerifiedEvidence:
    """Verify Azure vTPM evidence (JSON bytes, the decoded JSON, or parsed) at ``now``.

    ``nonce``: the TPM quote's extraData must equal it (None leaves the comparison to the
    caller through ``report_data``). ``certs``: VCEK (or its chain) when the evidence
    carries none; ``collateral``: Intel collateral for a TD quote; ``snp_collateral``: the
    SEV-SNP collateral provider (AMD's CRL, and the VCEK when neither the evidence nor
    ``certs`` holds it), as for a plain SEV-SNP report. Raises MalformedEvidence
    or EvidenceRejected naming the failed check; the result's ``tee`` is ``az-snp-vtpm`` or
    ``az-tdx-vtpm`` and its ``report_data`` the quote's extraData.
    """
    parsed = _parse(evidence)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    done: list[Check] = []
    try:
        if parsed.hcl.report_type == "snp":
            hardware = _snp(parsed, now, certs, snp_collateral)
        else:
            hardware = _tdx(parsed, now, collateral, done)
    except EvidenceRejected as err:
        raise EvidenceRejected(err.check, err.reason, (*done, *err.checks)) from None
    done.extend(hardware.checks)
    try:
        if parsed.hcl.report_type == "snp":
            done.append(hcl_vmpl(hardware))
        done.append(var_data_binding(parsed.hcl))
        key = attestation_key(parsed.hcl.runtime.ak_pub)
    except EvidenceRejected as err:
        raise _fail(err.check, err.reason, done) from None
    done.append(Check(CHECK_AK, True, f"HCLAkPub from the bound variable data, RSA "
                      f"{key.key_size} bits"))
    try:
        done.extend(verify_tpm_quote(parsed.quote, key, nonce))
    except EvidenceRejected as err:
        raise EvidenceRejected(err.check, err.reason, (*done, *err.checks)) from None
    return VerifiedEvidence(
        tee=parsed.tee,
        claims=_claims(parsed, hardware),
        report_data=parsed.quote.attest.extra_data,
        checks=tuple(done),
        chain=hardware.chain,
        tcb_status=hardware.tcb_status,
        advisory_ids=hardware.advisory_ids,
        extra={**hardware.extra, "shape": parsed.shape},
    )
