"""configfs-tsm provider against a temporary directory that behaves like the kernel interface.

The imitation (tsm_imitation.py) serves real evidence from the vectors, and for SEV-SNP a
certificate table built as a host builds it (snp_cert_table.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from snp_cert_table import ask_ark_der, build_table
from tsm_imitation import FakeTsm, guest_dev

from workbench.attestation.tee import TeeUnavailable, get_provider
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.tee.configfs_tsm import DEFAULT_ROOT, ConfigfsTsmProvider, ReportRace
from workbench.attestation.verify import verify_evidence
from workbench.errors import WorkbenchError

NOW = datetime(2025, 3, 1, tzinfo=UTC)
REPORT_DATA = report_data_for("nonce", {"kty": "oct", "k": "c2VjcmV0"})


def test_tdx_quote_through_configfs_tsm(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "tdx_guest")
    fake.start()
    provider = get_provider("configfs-tsm", root=tmp_path / "tsm",
                            dev=guest_dev(tmp_path, "tdx_guest"))
    assert (provider.name, provider.tee) == ("configfs-tsm", "tdx")
    evidence = provider.evidence(REPORT_DATA)
    fake.finish()
    assert fake.inblob == REPORT_DATA
    assert evidence == quote
    assert list((tmp_path / "tsm" / "report").iterdir()) == []  # entry removed
    verified = verify_evidence(evidence, now=NOW)
    assert verified.tee == "tdx" and not verified.simulated


def test_snp_report_and_its_vcek_from_the_auxblob(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    vcek = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    ask, ark = ask_ark_der(vectors / "roots/amd-ask_ark_milan.pem")
    table = build_table([("ark", ark), ("ask", ask), ("vcek", vcek)])
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest", auxblob=table)
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "sev-guest"))
    evidence, certificates = provider.certified_evidence(REPORT_DATA)
    fake.finish()
    assert provider.tee == "snp" and provider.last_provider == "sev_guest"
    assert provider.last_auxblob == table
    assert (evidence, certificates) == (report, (vcek,))
    assert verify_evidence(evidence, now=NOW, certs=certificates).tee == "snp"


def test_snp_without_a_host_table_gives_no_certificates(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "sev-guest"))
    assert provider.certified_evidence(REPORT_DATA) == (report, ())
    fake.finish()


def test_a_malformed_snp_table_fails_naming_the_auxblob(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest", auxblob=b"certificate table")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "sev-guest"))
    with pytest.raises(WorkbenchError) as err:
        provider.evidence(REPORT_DATA)
    fake.finish()
    assert str(err.value).endswith("/auxblob: SEV-SNP certificate table: ends after 0 entries "
                                   "without the all-zero terminator (17 bytes)")
    assert list((tmp_path / "tsm" / "report").iterdir()) == []


def test_concurrent_writer_is_detected(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "tdx/trustee-quote-v4.dat").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", quote, "tdx_guest", final_generation=2)
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "tdx_guest"))
    with pytest.raises(ReportRace, match="generation went from 0 to 2") as err:
        provider.evidence(REPORT_DATA)
    fake.finish()
    assert "another process wrote to this entry" in str(err.value)
    assert list((tmp_path / "tsm" / "report").iterdir()) == []


def test_provider_disagreeing_with_the_device(vectors: Path, tmp_path: Path) -> None:
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    fake = FakeTsm(tmp_path / "tsm", report, "sev_guest")
    fake.start()
    provider = ConfigfsTsmProvider(root=tmp_path / "tsm", dev=guest_dev(tmp_path, "tdx_guest"))
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
    provider = ConfigfsTsmProvider(root=tmp_path, dev=guest_dev(tmp_path))
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
