"""Evidence from a Linux confidential VM through configfs-tsm (Linux 6.7+: TDX and SEV-SNP).

The kernel interface (Documentation/ABI/testing/configfs-tsm): ``mkdir <root>/report/<name>``
creates a report entry whose attributes the kernel provides; writing 64 bytes to ``inblob``
and reading ``outblob`` yields a TDX quote or an SNP report over them; ``provider`` names
the driver (``tdx_guest``, ``sev_guest``); ``auxblob`` holds the SNP certificate table when
the host supplies one; ``generation`` counts writes to the entry, so a reader can tell
whether another process wrote between its own write and read. ``rmdir`` removes the entry.

For SEV-SNP the auxblob's certificate table carries this chip's VCEK (or VLEK) when the host
was given one; ``certified_evidence`` returns it with the report, so a broker without access
to AMD's key distribution service can still verify the report.

Order used here, chosen so a concurrent writer is always detected: read ``generation`` (g0),
write ``inblob``, read ``outblob``, ``auxblob``, ``provider``, read ``generation`` again; it
must be g0 + 1, else the outblob may answer someone else's inblob and is discarded.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import threading
import time
from pathlib import Path

from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.snp_certtable import endorsement_certificates, parse_cert_table
from workbench.attestation.tee import TeeUnavailable
from workbench.attestation.tee.binding import REPORT_DATA_SIZE
from workbench.errors import WorkbenchError

DEFAULT_ROOT = Path("/sys/kernel/config/tsm")
DEFAULT_DEV = Path("/dev")
REPORT_DIR = "report"
REQUIRED_ATTRIBUTES = ("inblob", "outblob", "generation", "provider")
# configfs provider names -> our TEE names, and the guest device each driver creates.
PROVIDER_TEES = {"tdx_guest": "tdx", "sev_guest": "snp"}
GUEST_DEVICES = {"tdx_guest": "tdx", "sev-guest": "snp"}
# Providers whose auxblob is the GHCB certificate table.
CERT_TABLE_PROVIDERS = frozenset({"sev_guest"})
# configfs creates the attributes together with the directory, so this wait ends at once
# there; it exists for implementations of the interface that populate an entry afterwards.
ATTRIBUTE_WAIT_S = 5.0
MAX_BLOB_BYTES = 1 << 20
# Reports are written with an entry name nobody else picks.
ENTRY_PREFIX = "workbench-"


class ReportRace(WorkbenchError):
    """Another process wrote to our report entry between our write and our read."""


def _read(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_BLOB_BYTES + 1)
    if len(data) > MAX_BLOB_BYTES:
        raise WorkbenchError(f"{path}: more than {MAX_BLOB_BYTES} bytes")
    return data


def _read_int(path: Path) -> int:
    text = _read(path).decode("ascii", errors="replace").strip()
    try:
        return int(text)
    except ValueError:
        raise WorkbenchError(f"{path}: expected a number, read {text[:40]!r}") from None


class ConfigfsTsmProvider:
    """``get_provider("configfs-tsm", root=..., dev=...)``: a TDX or SEV-SNP guest's evidence."""

    name = "configfs-tsm"

    def __init__(self, *, root: Path | str = DEFAULT_ROOT, dev: Path | str = DEFAULT_DEV,
                 tee: str | None = None, attribute_wait_s: float = ATTRIBUTE_WAIT_S) -> None:
        self.root = Path(root)
        self.attribute_wait_s = attribute_wait_s
        self.dev = Path(dev)
        self._tee = tee
        self._lock = threading.Lock()
        self.last_auxblob: bytes = b""
        self.last_provider: str | None = None
        self.last_certificates: tuple[bytes, ...] = ()

    def _report_root(self) -> Path:
        reports = self.root / REPORT_DIR
        if not reports.is_dir():
            raise TeeUnavailable(
                f"{reports}: no configfs-tsm report interface; this machine is not a TDX or "
                "SEV-SNP confidential VM with Linux 6.7+ (or configfs is not mounted)"
            )
        return reports

    @property
    def tee(self) -> str:
        """"tdx" or "snp", from the guest device present (or as configured)."""
        if self._tee is None:
            found = [tee for device, tee in GUEST_DEVICES.items() if (self.dev / device).exists()]
            if len(found) != 1:
                devices = ", ".join(str(self.dev / d) for d in GUEST_DEVICES)
                raise TeeUnavailable(
                    f"cannot tell the TEE type: expected exactly one of {devices}; this "
                    "machine has no TDX or SEV-SNP guest device"
                )
            self._tee = found[0]
        return self._tee

    def _await_attributes(self, entry: Path) -> None:
        deadline = time.monotonic() + self.attribute_wait_s
        while True:
            missing = [a for a in REQUIRED_ATTRIBUTES if not (entry / a).exists()]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TeeUnavailable(
                    f"{entry}: not a configfs-tsm report entry (no {', '.join(missing)})"
                )
            time.sleep(0.005)

    def _generate(self, entry: Path, report_data: bytes) -> bytes:
        self._await_attributes(entry)
        before = _read_int(entry / "generation")
        fd = os.open(entry / "inblob", os.O_WRONLY)
        with os.fdopen(fd, "wb") as handle:
            handle.write(report_data)
        outblob = _read(entry / "outblob")
        aux = entry / "auxblob"
        self.last_auxblob = _read(aux) if aux.exists() else b""
        provider = _read(entry / "provider").decode("ascii", errors="replace").strip()
        after = _read_int(entry / "generation")
        if after != before + 1:
            raise ReportRace(
                f"{entry}: generation went from {before} to {after} while reading the report; "
                "another process wrote to this entry, so the report was discarded (retry)"
            )
        self.last_provider = provider
        evidence = self._check(entry, provider, outblob)
        self.last_certificates = self._certificates(entry, provider)
        return evidence

    def _certificates(self, entry: Path, provider: str) -> tuple[bytes, ...]:
        if provider not in CERT_TABLE_PROVIDERS:
            return ()
        try:
            return endorsement_certificates(parse_cert_table(self.last_auxblob))
        except MalformedEvidence as err:
            raise WorkbenchError(f"{entry}/auxblob: {err}") from None

    def _check(self, entry: Path, provider: str, outblob: bytes) -> bytes:
        tee = PROVIDER_TEES.get(provider)
        if tee is None:
            raise WorkbenchError(f"{entry}/provider: unsupported TSM provider {provider!r}")
        if self._tee is not None and tee != self._tee:
            raise WorkbenchError(f"{entry}/provider: {provider!r} is not a {self._tee} provider")
        self._tee = tee
        try:
            produced = detect_tee(outblob)
        except MalformedEvidence as err:
            raise WorkbenchError(f"{entry}/outblob: {err}") from None
        if produced != tee:
            raise WorkbenchError(f"{entry}/outblob: {produced} evidence from provider {provider}")
        return outblob

    def evidence(self, report_data: bytes) -> bytes:
        return self.certified_evidence(report_data)[0]

    def certified_evidence(self, report_data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        """The evidence over ``report_data`` and the certificates (DER) the host gave with
        it for the key that signed it: the VCEK or VLEK for SEV-SNP, none for TDX."""
        if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report data must be exactly {REPORT_DATA_SIZE} bytes")
        reports = self._report_root()
        entry = reports / f"{ENTRY_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        with self._lock:
            try:
                entry.mkdir()
            except OSError as err:
                raise WorkbenchError(
                    f"{entry}: cannot create a report entry ({os.strerror(err.errno or 0)})"
                ) from None
            try:
                evidence = self._generate(entry, bytes(report_data))
            except BaseException:
                # The first failure is the one to report; cleanup is best effort here.
                with contextlib.suppress(OSError):
                    entry.rmdir()
                raise
            self._remove(entry)
            return evidence, self.last_certificates

    @staticmethod
    def _remove(entry: Path) -> None:
        try:
            entry.rmdir()
        except FileNotFoundError:
            pass
        except OSError as err:
            detail = "it still holds files" if err.errno == errno.ENOTEMPTY else str(err)
            raise WorkbenchError(f"{entry}: cannot remove report entry ({detail})") from None
