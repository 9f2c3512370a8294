"""Runtime ``azure-cvm`` at kernel start, through jupyter_client and the real provisioner.

Without a TPM the kernel never starts; with a TPM shaped like an Azure vTPM (swtpm holding a
real HCL report, tests/attestation/swtpm_helpers.py) it starts under azure-cvm and names the
TEE from the report. The provider's evidence is tested in
tests/attestation/test_azure_provider.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager
from kernel_helpers import ROOT, RunningKernel

from workbench.attestation.tee.tpm2_tools import TCTI_ENV
from workbench.kernel.runtimes import RUNTIMES, Machine, RuntimeUnavailable

# The swtpm helpers live with the attestation tests (like tests/imaging borrowing kernel's).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attestation"))
from swtpm_helpers import running_swtpm

VECTORS = ROOT.parent / "shared" / "vectors"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "JUPYTER_PATH": str(ROOT), **extra}
    for name in ("WORKBENCH_KERNEL_RUNTIME", "WORKBENCH_ALLOW_SIMULATION", TCTI_ENV):
        if name not in extra:
            env.pop(name, None)
    return env


def test_azure_cvm_without_a_tpm_refuses_to_start(tmp_path: Path) -> None:
    if any(Path("/dev", name).exists() for name in ("tpmrm0", "tpm0")):
        pytest.skip("this machine has a TPM device")
    assert RUNTIMES["azure-cvm"].probe(Machine(tpm_tcti=None)) is not None
    (tmp_path / "kernel.toml").write_text('runtime = "azure-cvm"\nallow_simulation = true\n')
    manager = KernelManager(kernel_name="confidential-python")
    with pytest.raises(RuntimeUnavailable) as refused:
        manager.start_kernel(env=_env(tmp_path))
    assert ("kernel runtime 'azure-cvm' was asked for, but no TPM device (/dev/tpmrm0 and "
            "/dev/tpm0 missing); not starting (a confidential kernel never falls back to "
            "simulation)") in str(refused.value)
    assert not manager.has_kernel


def test_a_kernel_starts_under_azure_cvm_on_a_vtpm(tmp_path: Path) -> None:
    report = VECTORS / "azure" / "kinvolk" / "hcl-report-snp.bin"
    if not report.is_file():
        pytest.skip(f"real evidence vectors not found at {VECTORS} (a clone without shared/)")
    (tmp_path / "state").mkdir()
    with running_swtpm(tmp_path / "state") as tpm:
        tpm.persist_ak()
        tpm.write_nv(report.read_bytes())
        (tmp_path / "kernel.toml").write_text('runtime = "azure-cvm"\n')
        kernel = RunningKernel(_env(tmp_path, **{TCTI_ENV: tpm.tcti}), tmp_path / "log")
        try:
            info = kernel.client.kernel_info(reply=True)["content"]
        finally:
            kernel.shutdown()
    assert info["workbench"]["runtime"] == "azure-cvm"
    assert info["workbench"]["tee"] == "az-snp-vtpm"
    assert info["workbench"]["simulated"] is False
