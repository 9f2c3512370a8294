"""Where a confidential kernel can run, and how ``auto`` chooses without ever faking hardware.

One row per runtime: the evidence provider the kernel uses there and a probe that says why
the runtime is not available on this machine (or None when it is). ``auto`` takes the first
hardware runtime whose probe passes; the simulated TEE only when configuration allows it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.attestation.tee.tpm2_tools import DEVICES, TCTI_ENV, TOOLS, Tpm2Tools, device_tcti
from workbench.errors import InputError, WorkbenchError

SIMULATED, GRAMINE_SGX, CVM, AZURE_CVM, AUTO = (
    "simulated", "gramine-sgx", "cvm", "azure-cvm", "auto")
# A probe runs at every kernel start: a TPM that does not answer within this is not usable.
TPM_PROBE_TIMEOUT_S = 5.0


class RuntimeUnavailable(WorkbenchError):
    """The runtime asked for cannot run here; the kernel does not start."""


@dataclass(frozen=True)
class Machine:
    """The places probes look at; tests point them at directories they build."""

    dev: Path = Path("/dev")
    tsm: Path = Path("/sys/kernel/config/tsm")
    which: Callable[[str], str | None] = field(default=shutil.which)
    # The TPM to talk to; None: the TPM device under ``dev`` (tests name a swtpm here).
    tpm_tcti: str | None = field(default_factory=lambda: os.environ.get(TCTI_ENV) or None)


def _probe_gramine(machine: Machine) -> str | None:
    devices = [machine.dev / "sgx_enclave", machine.dev / "sgx" / "enclave"]
    if not any(d.exists() for d in devices):
        return f"no SGX device ({devices[0]} missing)"
    if machine.which("gramine-sgx") is None:
        return "gramine-sgx is not installed (not on PATH)"
    return None


def _probe_cvm(machine: Machine) -> str | None:
    report = machine.tsm / "report"
    if not report.is_dir():
        return f"no configfs-tsm interface ({report} missing)"
    guests = [machine.dev / "tdx_guest", machine.dev / "sev-guest"]
    if not any(g.exists() for g in guests):
        return f"not a confidential VM guest ({' and '.join(str(g) for g in guests)} missing)"
    return None


def _probe_azure_cvm(machine: Machine) -> str | None:
    tcti = machine.tpm_tcti or device_tcti(machine.dev)
    if tcti is None:
        devices = " and ".join(str(machine.dev / name) for name in DEVICES)
        return f"no TPM device ({devices} missing)"
    missing = [tool for tool in TOOLS if machine.which(tool) is None]
    if missing:
        return f"tpm2-tools is not installed ({', '.join(missing)} not on PATH)"
    # Imported here: only this probe needs the HCL parser.
    from workbench.attestation.formats.azure_hcl import parse_hcl_report
    from workbench.attestation.formats.errors import MalformedEvidence
    from workbench.attestation.tee.azure_vtpm import HCL_REPORT_NV_INDEX

    index = f"0x{HCL_REPORT_NV_INDEX:08x}"
    tpm = Tpm2Tools(tcti, timeout_s=TPM_PROBE_TIMEOUT_S)
    try:
        if HCL_REPORT_NV_INDEX not in tpm.nv_indices():
            return (f"the TPM at {tcti} has no NV index {index} (the HCL report): not an "
                    "Azure confidential VM's vTPM")
        parse_hcl_report(tpm.nv_read(HCL_REPORT_NV_INDEX))
    except WorkbenchError as err:
        return f"the TPM at {tcti} cannot be used ({err})"
    except MalformedEvidence as err:
        return f"NV index {index} does not hold an HCL report ({err})"
    return None


@dataclass(frozen=True)
class Runtime:
    name: str
    provider: str
    hardware: bool
    description: str
    probe: Callable[[Machine], str | None]


RUNTIMES: dict[str, Runtime] = {
    GRAMINE_SGX: Runtime(GRAMINE_SGX, "gramine", True,
                         "Intel SGX enclave under Gramine (DCAP quotes from /dev/attestation)",
                         _probe_gramine),
    CVM: Runtime(CVM, "configfs-tsm", True,
                 "confidential VM, Intel TDX or AMD SEV-SNP (evidence through configfs-tsm)",
                 _probe_cvm),
    AZURE_CVM: Runtime(AZURE_CVM, "azure-vtpm", True,
                       "Azure confidential VM, AMD SEV-SNP or Intel TDX behind the paravisor "
                       "(HCL report and TPM2 quotes from the vTPM)",
                       _probe_azure_cvm),
    SIMULATED: Runtime(SIMULATED, "simulated", False,
                       "simulated TEE: evidence signed by this machine's development key; "
                       "protects nothing from the machine's operator",
                       lambda _machine: None),
}
# The order in which ``auto`` tries hardware: a guest that reaches its firmware directly
# (configfs-tsm) gives per-request reports, so it goes before the vTPM path.
AUTO_ORDER = (GRAMINE_SGX, CVM, AZURE_CVM)


def runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join([AUTO, *RUNTIMES])
        raise InputError(f"unknown kernel runtime '{name}' (known: {known})") from None


def resolve_runtime(requested: str, *, allow_simulation: bool,
                    machine: Machine | None = None) -> Runtime:
    """The runtime to start under; raises RuntimeUnavailable with every reason otherwise."""
    machine = machine or Machine()
    if requested != AUTO:
        chosen = runtime(requested)
        missing = chosen.probe(machine)
        if missing is not None:
            raise RuntimeUnavailable(
                f"kernel runtime '{requested}' was asked for, but {missing}; not starting "
                "(a confidential kernel never falls back to simulation)")
        return chosen
    reasons = []
    for name in AUTO_ORDER:
        missing = RUNTIMES[name].probe(machine)
        if missing is None:
            return RUNTIMES[name]
        reasons.append(f"{name}: {missing}")
    if allow_simulation:
        return RUNTIMES[SIMULATED]
    raise RuntimeUnavailable(
        "no TEE hardware found (" + "; ".join(reasons) + ") and simulation is not allowed: "
        "set allow_simulation = true in $WORKBENCH_HOME/kernel.toml or "
        "WORKBENCH_ALLOW_SIMULATION=1 (or choose runtime 'simulated') to run on a simulated "
        "TEE, which protects nothing from this machine's operator")
