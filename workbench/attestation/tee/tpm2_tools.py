"""A TPM 2.0 reached through tpm2-tools (the tpm2-software project's command-line tools).

Every command names its TCTI with ``-T``: ``device:/dev/tpmrm0`` in production (the kernel's
resource manager, so transient objects never leak between commands), ``swtpm:host=...`` in
the tests. Three operations are needed by the Azure vTPM provider: list the defined NV
indices, read one in full, and quote PCRs with a persisted key. Failures are sorted into
"no TPM reachable" (:class:`TpmUnavailable`) and "the TPM refused" (:class:`TpmCommandFailed`),
each carrying the tool's own error line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.attestation.tee import TeeUnavailable
from workbench.errors import WorkbenchError

# The environment variable naming the TCTI (tests point it at swtpm).
TCTI_ENV = "WORKBENCH_TPM_TCTI"
# The kernel's resource manager first (it flushes what a command leaves loaded), the raw
# device only when the kernel offers no resource manager.
DEVICES = ("tpmrm0", "tpm0")
DEFAULT_TCTI = f"device:/dev/{DEVICES[0]}"
TOOLS = ("tpm2_getcap", "tpm2_nvread", "tpm2_quote")
# A TPM answers in milliseconds; a hung socket or device must not hang a kernel's attestation.
COMMAND_TIMEOUT_S = 30.0
# tpm2-tools prints this when the TCTI (device or socket) cannot be opened.
TCTI_FAILURE = "Could not load tcti"
# "ERROR:tcti:src/tss2-tcti/tcti-device.c:452:Tss2_Tcti_Device_Init() Failed to open ..."
_LOG_PREFIX = re.compile(r"^(?:ERROR|WARNING):\w+:\S+:\d+:\S+\(\)\s*")
_HANDLE_LINE = re.compile(r"^\s*-\s*(0x[0-9a-fA-F]+)\s*$")


class TpmUnavailable(TeeUnavailable):
    """No TPM answers at the configured TCTI, or tpm2-tools is not installed."""


class TpmCommandFailed(WorkbenchError):
    """The TPM answered with an error (an undefined handle, a refused authorisation)."""


@dataclass(frozen=True)
class QuoteParts:
    """What TPM2_Quote returned: the TPMS_ATTEST message, its raw signature, the PCR values
    read with it (in selection order)."""

    message: bytes
    signature: bytes
    pcrs: tuple[bytes, ...]


def device_tcti(dev: Path = Path("/dev")) -> str | None:
    """``device:<dev>/tpmrm0`` (or ``tpm0``) when that device exists, else None."""
    found = next((dev / name for name in DEVICES if (dev / name).exists()), None)
    return f"device:{found}" if found is not None else None


def configured_tcti(dev: Path = Path("/dev")) -> str:
    """The TCTI to use: $WORKBENCH_TPM_TCTI, else the TPM device present, else the default."""
    return os.environ.get(TCTI_ENV) or device_tcti(dev) or DEFAULT_TCTI


def _errors(stderr: str) -> list[str]:
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()
             if line.startswith("ERROR")]
    return [line.removeprefix("ERROR: ") for line in lines if line]


class Tpm2Tools:
    """``Tpm2Tools(tcti)``: run tpm2-tools against one TPM."""

    def __init__(self, tcti: str = DEFAULT_TCTI, *, timeout_s: float = COMMAND_TIMEOUT_S
                 ) -> None:
        self.tcti = tcti
        self.timeout_s = timeout_s

    def _run(self, tool: str, *args: str) -> str:
        if shutil.which(tool) is None:
            raise TpmUnavailable(f"{tool} not found on PATH: install tpm2-tools (Debian/Ubuntu "
                                 "package tpm2-tools) to use the vTPM")
        try:
            done = subprocess.run([tool, "-T", self.tcti, *args], capture_output=True,
                                  text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise TpmUnavailable(f"{tool}: no answer from the TPM at {self.tcti} within "
                                 f"{self.timeout_s:g} s") from None
        if done.returncode == 0:
            return done.stdout
        errors = _errors(done.stderr) or [done.stderr.strip() or f"exit status {done.returncode}"]
        if TCTI_FAILURE in done.stderr:
            # The first line says why (no such device, permission denied, connection refused).
            raise TpmUnavailable(f"no TPM reachable at {self.tcti}: {errors[0]}")
        if done.returncode < 0:
            raise TpmCommandFailed(f"{tool} crashed (signal {-done.returncode}) talking to "
                                   f"the TPM at {self.tcti}")
        raise TpmCommandFailed(f"{tool}: {errors[-1]}")

    def handles(self, kind: str) -> tuple[int, ...]:
        """The handles of ``kind`` ("nv-index", "persistent", ...) present in this TPM."""
        out = self._run("tpm2_getcap", f"handles-{kind}")
        return tuple(int(m.group(1), 16) for line in out.splitlines()
                     if (m := _HANDLE_LINE.match(line)))

    def nv_indices(self) -> tuple[int, ...]:
        """The NV indices defined in this TPM."""
        return self.handles("nv-index")

    def nv_read(self, index: int) -> bytes:
        """The whole of NV index ``index``, read with owner authorisation (empty password)."""
        with tempfile.TemporaryDirectory(prefix="workbench-tpm-") as scratch:
            out = Path(scratch) / "nv.bin"
            self._run("tpm2_nvread", "-C", "o", "-o", str(out), f"0x{index:08x}")
            return out.read_bytes()

    def quote(self, key_handle: int, qualifying_data: bytes, pcr_bank: str,
              pcrs: tuple[int, ...]) -> QuoteParts:
        """TPM2_Quote over ``pcrs`` of ``pcr_bank`` by the persisted key at ``key_handle``,
        with ``qualifying_data`` as extraData (the key's own signing scheme, RSASSA for an
        RSA attestation key)."""
        selection = f"{pcr_bank}:{','.join(str(p) for p in pcrs)}"
        with tempfile.TemporaryDirectory(prefix="workbench-tpm-") as scratch:
            base = Path(scratch)
            self._run("tpm2_quote", "-c", f"0x{key_handle:08x}", "-l", selection,
                      "-q", qualifying_data.hex(), "-g", pcr_bank,
                      "-m", str(base / "message"), "-s", str(base / "signature"), "-f", "plain",
                      "-o", str(base / "pcrs"), "-F", "values")
            values = (base / "pcrs").read_bytes()
            message = (base / "message").read_bytes()
            signature = (base / "signature").read_bytes()
        if not pcrs or len(values) % len(pcrs):
            raise TpmCommandFailed(f"tpm2_quote wrote {len(values)} bytes of PCR values for "
                                   f"{len(pcrs)} PCRs")
        size = len(values) // len(pcrs)
        return QuoteParts(message, signature,
                          tuple(values[i:i + size] for i in range(0, len(values), size)))
