"""Reference values taken from captured, verified evidence: what ``policy init
--from-evidence`` writes.

Which claims become which policy keys is a table per TEE. The evidence must have verified
first (the caller passes a :class:`VerifiedEvidence`), so a policy is never written from
bytes nobody checked; still, capturing is trust on first use, and the command says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workbench.attestation.appraise.policy import load_policy
from workbench.attestation.verify.result import VerifiedEvidence

# tee -> (policy key, claim) pinned one-to-one
PINNED: dict[str, tuple[tuple[str, str], ...]] = {
    "sgx": (("mrenclave", "mrenclave"), ("mrsigner", "mrsigner")),
    "tdx": (("mrtd", "mrtd"), ("rtmr1", "rtmr1"), ("rtmr2", "rtmr2")),
    "snp": (("measurement", "measurement"), ("host_data", "host_data"), ("vmpl", "vmpl")),
    "az-snp-vtpm": (("measurement", "measurement"), ("host_data", "host_data")),
    "az-tdx-vtpm": (("mrtd", "mrtd"),),
    "simulated": (("measurement", "measurement"),),
}
# TEEs whose reported TCB becomes min_tcb (SEV-SNP: the VCEK certifies it).
MIN_TCB_TEES = ("snp", "az-snp-vtpm")
# The PCRs pinned by default: UEFI firmware, its configuration, option ROMs, boot loader and
# the Secure Boot state (TCG PC Client profile PCRs 0-7), which are stable across reboots of
# one image; the OS-owned ones (8-15, kernel and command line on most distributions) change
# with updates, so pinning them is a choice made with --pcrs.
DEFAULT_PCRS = tuple(range(8))
VTPM_TEES = ("az-snp-vtpm", "az-tdx-vtpm")


def _is_zero(value: Any) -> bool:
    return isinstance(value, str) and not value.strip("0")


def references_from(evidence: VerifiedEvidence, pcrs: Iterable[int] = DEFAULT_PCRS
                    ) -> dict[str, Any]:
    """The reference values of ``evidence``'s TEE that would accept exactly this evidence's
    code (zero host_data, which pins nothing, is left out)."""
    claims = evidence.claims
    refs: dict[str, Any] = {}
    for key, claim in PINNED.get(evidence.tee, ()):
        value = claims.get(claim)
        if value is not None and not (key == "host_data" and _is_zero(value)):
            refs[key] = value
    if evidence.tee in MIN_TCB_TEES and isinstance(claims.get("reported_tcb"), dict):
        refs["min_tcb"] = dict(claims["reported_tcb"])
    if evidence.tee in VTPM_TEES:
        captured = claims.get("pcrs") or {}
        missing = [i for i in pcrs if str(i) not in captured]
        if missing:
            raise ValueError(f"the evidence's TPM quote has no PCR {missing[0]}")
        refs["pcrs"] = {str(i): captured[str(i)] for i in pcrs}
        config = claims.get("vm_configuration") or {}
        if config:
            refs["vm_configuration"] = dict(config)
    return refs


def policy_from_evidence(evidence: VerifiedEvidence, *, policy_id: str, name: str = "",
                         pcrs: Iterable[int] = DEFAULT_PCRS, allow_simulation: bool = False
                         ) -> dict[str, Any]:
    """A policy document accepting ``evidence``'s TEE and reference values (and loading)."""
    document: dict[str, Any] = {"id": policy_id}
    if name:
        document["name"] = name
    document.update(
        allowed_tee=[evidence.tee],
        reference_values={evidence.tee: references_from(evidence, tuple(pcrs))},
        debug_allowed=False,
        accepted_tcb_statuses=["UpToDate"],
        max_evidence_age_s=300,
        allow_simulation=allow_simulation,
    )
    load_policy(document)  # what we write must load
    return document
