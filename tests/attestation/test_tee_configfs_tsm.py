"""configfs-tsm provider against a temporary directory that behaves like the kernel interface.

The imitation serves real evidence from the vectors: it watches for the report entry the
provider creates, fills it with the kernel's attributes (FIFOs where the kernel answers a
read), answers ``generation`` before and after, takes the 64-byte inblob and serves the
quote as outblob, then removes its files so the provider's rmdir finds the entry empty.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workbench.attestation.tee import TeeUnavailable, get_provider
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.tee.configfs_tsm import DEFAULT_ROOT, ConfigfsTsmProvider, ReportRace
from workbench.attestation.verify import verify_evidence
from workbench.errors import WorkbenchError

NOW = datetime(2025, 3, 1, tzinfo=UTC)
REPORT_DATA = report_data_for("nonce", {"kty": "oct", "k": "c2VjcmV0"})


class FakeTsm(threading.Thread):
    def __init__(self, root: Path, outblob: bytes, provider: str, *, auxblob: bytes = b"",
                 final_generation: int | str = 1, clean: bool = True) -> None:
        super().__init__(daemon=True)
        self.reports = root / "report"
        self.reports.mkdir(parents=True)
        self.outblob, self.provider, self.auxblob = outblob, provider, auxblob
        self.final_generation = final_generation
        self.clean = clean
        self.inblob: bytes | None = None
        self.error: BaseException | None = None

    def _entry(self) -> Path:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            entries = list(self.reports.iterdir())
            if entries:
                return entries[0]
            time.sleep(0.002)
        raise TimeoutError("no report entry was created")

    @staticmethod
    def _serve(fifo: Path, data: bytes) -> None:
        with fifo.open("wb") as handle:
            handle.write(data)

    def run(self) -> None:
        try:
            entry = self._entry()
            if self.auxblob:
                (entry / "auxblob").write_bytes(self.auxblob)
            (entry / "provider").write_text(self.provider + "\n")
            for name in ("generation", "outblob", "inblob"):
                os.mkfifo(entry / name)
            first = b"0\n" if isinstance(self.final_generation, int) else b"zero\n"
            self._serve(entry / "generation", first)
            with (entry / "inblob").open("rb") as handle:
                self.inblob = handle.read()
            self._serve(entry / "outblob", self.outblob)
            # Clean up before the last answer, so the entry is empty when the reader rmdirs.
            with (entry / "generation").open("wb") as handle:
                for child in entry.iterdir():
                    if self.clean:
                        child.unlink()
                handle.write(f"{self.final_generation}\n".encode())
        except BaseException as err:  # surfaced by finish()
            self.error = err

    def finish(self) -> None:
        self.join(timeout=10)
        assert not self.is_alive(), "the imitation is still waiting for the provider"
        if self.error:
            raise self.error


def _dev(tmp_path: Path, *devices: str) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for device in devices:
        (dev / device).write_bytes(b"")
    return dev


def test_tdx_quote_through_configfs_tsm(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "tdx_guest")
    fake.start()
    provider = get_provider("configfs-tsm", root=tmp_path / "tsm",
                            dev=_dev(tmp_path, "tdx_guest"))
    assert (provider.name, provider.tee) == ("configfs-tsm", "tdx")
    evidence = provider.evidence(REPORT_DATA)
    fake.finish()
    assert fake.inblob == REPORT_DATA
    assert evidence == quote
    assert list((tmp_path / "tsm" / "report").iterdir()) == []  # entry removed
    verified = verify_evidence(evidence, now=NOW)
    assert verified.tee == "tdx" and not verified.simulated


def test_snp_report_and_auxblob_through_configfs_tsm(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    vcek = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest", auxblob=b"certificate table")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=_dev(tmp_path, "sev-guest"))
    evidence = provider.evidence(REPORT_DATA)
    fake.finish()
    assert provider.tee == "snp" and provider.last_provider == "sev_guest"
    assert provider.last_auxblob == b"certificate table"
    assert verify_evidence(evidence, now=NOW, certs=[vcek]).tee == "snp"


def test_concurrent_writer_is_detected(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/trustee-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "tdx_guest", final_generation=2)
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=_dev(tmp_path, "tdx_guest"))
    with pytest.raises(ReportRace, match="generation went from 0 to 2") as err:
        provider.evidence(REPORT_DATA)
    fake.finish()
    assert "another process wrote to this entry" in str(err.value)
    assert list((tmp_path / "tsm" / "report").iterdir()) == []


def test_provider_disagreeing_with_the_device(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=_dev(tmp_path, "tdx_guest"))
    assert provider.tee == "tdx"
    with pytest.raises(WorkbenchError, match="'sev_guest' is not a tdx provider"):
        provider.evidence(REPORT_DATA)
    fake.finish()


def test_outblob_that_is_not_evidence(tmp_path: Path) -> None:
    fake = FakeTsm(tmp_path / "tsm", b"\x00garbage", "tdx_guest")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", tee="tdx")
    with pytest.raises(WorkbenchError, match="outblob: unrecognised evidence"):
        provider.evidence(REPORT_DATA)
    fake.finish()


def test_unknown_tsm_provider(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/trustee-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "arm_cca_guest")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", tee="tdx")
    with pytest.raises(WorkbenchError, match="unsupported TSM provider 'arm_cca_guest'"):
        provider.evidence(REPORT_DATA)
    fake.finish()


def test_entry_without_attributes(tmp_path: Path) -> None:
    (tmp_path / "tsm" / "report").mkdir(parents=True)
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", tee="tdx", attribute_wait_s=0.05)
    with pytest.raises(TeeUnavailable, match=r"not a configfs-tsm report entry \(no inblob, "):
        provider.evidence(REPORT_DATA)
    assert list((tmp_path / "tsm" / "report").iterdir()) == []


def test_missing_interface_names_the_path(tmp_path: Path) -> None:
    provider = ConfigfsTsmProvider(root=tmp_path / "absent", tee="tdx")
    with pytest.raises(TeeUnavailable) as err:
        provider.evidence(REPORT_DATA)
    assert str(tmp_path / "absent" / "report") in str(err.value)
    assert "this machine is not a TDX or SEV-SNP confidential VM" in str(err.value)


def test_no_guest_device(tmp_path: Path) -> None:
    provider = ConfigfsTsmProvider(root=tmp_path, dev=_dev(tmp_path))
    with pytest.raises(TeeUnavailable, match="this machine has no TDX or SEV-SNP guest device"):
        _ = provider.tee


@pytest.mark.skipif((DEFAULT_ROOT / "report").exists(), reason="this machine has configfs-tsm")
def test_default_path_on_this_machine_fails_without_fallback() -> None:
    provider = get_provider("configfs-tsm")
    with pytest.raises(TeeUnavailable, match="/sys/kernel/config/tsm/report"):
        provider.evidence(REPORT_DATA)


def test_report_data_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly 64 bytes"):
        ConfigfsTsmProvider(root=tmp_path, tee="tdx").evidence(b"short")


def test_generation_that_is_not_a_number(tmp_path: Path) -> None:
    fake = FakeTsm(tmp_path / "tsm", b"", "tdx_guest", final_generation="zero")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", tee="tdx")
    with pytest.raises(WorkbenchError, match="generation: expected a number, read 'zero'"):
        provider.evidence(REPORT_DATA)
    # The imitation still waits for the rest of the exchange; play it out so it ends.
    entry = next((tmp_path / "tsm" / "report").iterdir())
    with (entry / "inblob").open("wb"):
        pass
    (entry / "outblob").read_bytes()
    (entry / "generation").read_bytes()
    fake.finish()


def test_entry_that_cannot_be_removed(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/trustee-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "tdx_guest", clean=False)
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", tee="tdx")
    with pytest.raises(WorkbenchError, match=r"cannot remove report entry \(it still holds "):
        provider.evidence(REPORT_DATA)
    fake.finish()
