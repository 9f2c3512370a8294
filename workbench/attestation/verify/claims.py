"""Which claims mean what, declared once per TEE: every consumer reads this table.

The verifiers emit claims under their own names (``mrenclave``, ``mrtd``, ``measurement``);
the broker's approvers and audit log, the policy rules, the kernel's report and the lab
extension's trust panel all need to know which of those names the code, who signed it and
which identify a kernel. The lab extension is TypeScript, so it gets a generated copy:
``python -m workbench.attestation.verify.claims > extensions/src/teeClaims.ts`` (a test
fails when the committed copy differs).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from workbench.attestation.formats.azure_hcl_offsets import VM_CONFIGURATION_FLAGS
from workbench.attestation.formats.snp_offsets import PLATFORM_INFO_FLAGS, POLICY_FLAGS

TS_PATH = "extensions/src/teeClaims.ts"
# The roles of AttestationReport.identity(what), each naming one claim.
ROLES = ("measurement", "signer", "svn")


@dataclass(frozen=True)
class TeeClaims:
    """What one TEE's claims mean.

    ``identifying`` is what approvers see and the audit log records, in that order;
    ``pin_one_of`` the claims of which a policy must pin at least one, or any code would
    pass; ``pin_also`` those it must pin as well, where that measurement leaves code out
    (a TD's MRTD measures its firmware only); ``panel`` the trust panel's (label, claim)
    rows after the measurement; ``flags`` the claims verify emits as decoded bit fields,
    each with its flag names (an object claim of booleans, named as the format's bit table
    names them).
    """

    tee: str
    name: str
    measurement: str
    signer: str
    svn: str
    identifying: tuple[str, ...]
    pin_one_of: tuple[str, ...]
    panel: tuple[tuple[str, str], ...]
    flags: tuple[tuple[str, tuple[str, ...]], ...] = ()
    pin_also: tuple[str, ...] = ()

    def decoded(self, claim: str) -> tuple[str, ...]:
        """The flag names of the decoded bit-field claim ``claim`` (empty: no such claim)."""
        return dict(self.flags).get(claim, ())

    def role(self, what: str) -> str | None:
        """The claim that plays ``what`` (one of ``ROLES``) for this TEE, if any."""
        return {"measurement": self.measurement, "signer": self.signer, "svn": self.svn}.get(what)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measurement": self.measurement,
            "signer": self.signer,
            "svn": self.svn,
            "identifying": list(self.identifying),
            "pin_one_of": list(self.pin_one_of),
            "pin_also": list(self.pin_also),
            "panel": [list(row) for row in self.panel],
            "flags": {claim: list(names) for claim, names in self.flags},
        }


_DECLARED = (
    TeeClaims(
        tee="sgx",
        name="Intel SGX enclave",
        measurement="mrenclave",
        signer="mrsigner",
        svn="isvsvn",
        identifying=("mrenclave", "mrsigner", "isvprodid", "isvsvn", "debug"),
        pin_one_of=("mrenclave", "mrsigner"),
        panel=(("Signer (MRSIGNER)", "mrsigner"), ("Product ID", "isvprodid"),
               ("SVN", "isvsvn"), ("FMSPC", "fmspc")),
    ),
    TeeClaims(
        tee="tdx",
        name="Intel TDX confidential VM",
        measurement="mrtd",
        signer="signer",
        svn="tee_tcb_svn",
        identifying=("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "debug"),
        pin_one_of=("mrtd",),
        panel=(("RTMR0", "rtmr0"), ("RTMR1", "rtmr1"), ("RTMR2", "rtmr2"),
               ("RTMR3", "rtmr3"), ("TEE TCB SVN", "tee_tcb_svn"), ("FMSPC", "fmspc")),
        # MRTD is the TD firmware (TDVF) only; the firmware measures the kernel and boot
        # loader into RTMR1 and the command line and initrd into RTMR2, so a policy pinning
        # MRTD alone would accept any guest OS booted by a stock TDVF.
        pin_also=("rtmr1", "rtmr2"),
    ),
    TeeClaims(
        tee="snp",
        name="AMD SEV-SNP confidential VM",
        measurement="measurement",
        signer="signer",
        svn="reported_tcb",
        identifying=("measurement", "host_data", "vmpl", "debug", "signer"),
        pin_one_of=("measurement",),
        panel=(("Signer", "signer"), ("Product", "product"), ("Guest SVN", "guest_svn"),
               ("Reported TCB", "reported_tcb"), ("VMPL", "vmpl")),
        flags=(("policy_flags", tuple(POLICY_FLAGS)),
               ("platform_flags", tuple(PLATFORM_INFO_FLAGS))),
    ),
    # Azure confidential VMs: the hardware report measures Microsoft's paravisor (the same on
    # every VM of a release), the guest's boot chain is in the vTPM's PCRs. So a policy must
    # pin PCRs; the hardware measurement alone would let any guest OS pass.
    TeeClaims(
        tee="az-snp-vtpm",
        name="Azure confidential VM (AMD SEV-SNP, vTPM)",
        measurement="measurement",
        signer="signer",
        svn="reported_tcb",
        identifying=("measurement", "pcrs", "host_data", "vm_configuration", "debug", "signer"),
        pin_one_of=("pcrs",),
        panel=(("PCRs", "pcrs"), ("VM configuration", "vm_configuration"),
               ("Signer", "signer"), ("Product", "product"), ("Reported TCB", "reported_tcb"),
               ("VM id", "vm_unique_id")),
        flags=(("policy_flags", tuple(POLICY_FLAGS)),
               ("platform_flags", tuple(PLATFORM_INFO_FLAGS)),
               ("vm_configuration", tuple(VM_CONFIGURATION_FLAGS.values()))),
    ),
    TeeClaims(
        tee="az-tdx-vtpm",
        name="Azure confidential VM (Intel TDX, vTPM)",
        measurement="mrtd",
        signer="signer",
        svn="tee_tcb_svn",
        identifying=("mrtd", "pcrs", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "vm_configuration",
                     "debug"),
        pin_one_of=("pcrs",),
        panel=(("PCRs", "pcrs"), ("VM configuration", "vm_configuration"),
               ("TEE TCB SVN", "tee_tcb_svn"), ("FMSPC", "fmspc"), ("VM id", "vm_unique_id")),
        flags=(("vm_configuration", tuple(VM_CONFIGURATION_FLAGS.values())),),
    ),
    TeeClaims(
        tee="simulated",
        name="Simulated TEE",
        measurement="measurement",
        signer="platform_key",
        svn="svn",
        identifying=("measurement", "platform_key", "debug"),
        pin_one_of=("measurement",),
        panel=(("Platform key", "platform_key"), ("Runtime", "runtime")),
    ),
)
TEE_CLAIMS: dict[str, TeeClaims] = {declared.tee: declared for declared in _DECLARED}


def declared(tee: str) -> TeeClaims | None:
    """The declaration for ``tee``, or None for a TEE this installation does not know."""
    return TEE_CLAIMS.get(tee)


def to_json() -> dict[str, Any]:
    """The whole table, tee -> declaration, as JSON-ready data."""
    return {tee: claims.to_json() for tee, claims in TEE_CLAIMS.items()}


def _ts_table() -> str:
    # One line per field keeps the generated file short and its diffs readable.
    blocks = []
    for tee, fields in to_json().items():
        lines = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
        blocks.append(f"  {json.dumps(tee)}: {{\n{lines}\n  }}")
    return "{\n" + ",\n".join(blocks) + "\n}"


def typescript() -> str:
    """The text of ``extensions/src/teeClaims.ts``, generated from the table."""
    table = _ts_table()
    return (
        "// Generated from workbench/attestation/verify/claims.py; do not edit. Regenerate:\n"
        f"//   python -m workbench.attestation.verify.claims > {TS_PATH}\n"
        "\n"
        "export interface ITeeClaims {\n"
        "  name: string;\n"
        "  measurement: string;\n"
        "  signer: string;\n"
        "  svn: string;\n"
        "  identifying: string[];\n"
        "  pin_one_of: string[];\n"
        "  pin_also: string[];\n"
        "  panel: Array<[string, string]>;\n"
        "  flags: { [claim: string]: string[] };\n"
        "}\n"
        "\n"
        f"export const TEE_CLAIMS: {{ [tee: string]: ITeeClaims }} = {table};\n"
    )


if __name__ == "__main__":
    sys.stdout.write(typescript())
