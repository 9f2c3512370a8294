"""Evidence from a Gramine-SGX enclave through its /dev/attestation pseudo-filesystem.

Gramine's interface: ``attestation_type`` reads ``none``, ``epid`` or ``dcap``;
writing 64 bytes to ``user_report_data`` sets the SGX REPORTDATA; reading ``quote`` returns
a quote over it. We accept only ``dcap`` (ECDSA quotes, which we verify against Intel's
pinned root); EPID is retired and ``none`` means the manifest did not enable attestation.
"""

from __future__ import annotations

import threading
from pathlib import Path

from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.tee import TeeUnavailable
from workbench.attestation.tee.binding import REPORT_DATA_SIZE
from workbench.errors import WorkbenchError

DEFAULT_ROOT = Path("/dev/attestation")
MAX_QUOTE_BYTES = 1 << 20
# Why each attestation type other than dcap is refused, for the error message.
UNSUPPORTED_TYPES = {
    "none": "the Gramine manifest does not enable remote attestation "
            "(set sgx.remote_attestation = \"dcap\")",
    "epid": "EPID attestation is retired; configure DCAP (sgx.remote_attestation = \"dcap\")",
}


class GramineProvider:
    """``get_provider("gramine", root=...)``: SGX DCAP quotes from inside a Gramine enclave."""

    name = "gramine"
    tee = "sgx"

    def __init__(self, *, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        # The pseudo-files hold one report-data value per process; serialise our threads.
        self._lock = threading.Lock()

    def attestation_type(self) -> str:
        path = self.root / "attestation_type"
        if not path.is_file():
            raise TeeUnavailable(
                f"{path} not found: this process is not running inside a Gramine-SGX enclave"
            )
        return path.read_text("ascii", errors="replace").strip()

    def evidence(self, report_data: bytes) -> bytes:
        if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report data must be exactly {REPORT_DATA_SIZE} bytes")
        kind = self.attestation_type()
        if kind != "dcap":
            reason = UNSUPPORTED_TYPES.get(kind, f"unknown attestation type {kind!r}")
            raise TeeUnavailable(f"{self.root / 'attestation_type'}: {reason}")
        with self._lock:
            (self.root / "user_report_data").write_bytes(bytes(report_data))
            with (self.root / "quote").open("rb") as handle:
                quote = handle.read(MAX_QUOTE_BYTES + 1)
        if len(quote) > MAX_QUOTE_BYTES:
            raise WorkbenchError(f"{self.root / 'quote'}: more than {MAX_QUOTE_BYTES} bytes")
        try:
            produced = detect_tee(quote)
        except MalformedEvidence as err:
            raise WorkbenchError(f"{self.root / 'quote'}: {err}") from None
        if produced != "sgx":
            raise WorkbenchError(f"{self.root / 'quote'}: {produced} evidence, not an SGX quote")
        return quote
