"""Gramine /dev/attestation provider against a temporary directory serving a real SGX quote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from workbench.attestation.tee import TeeUnavailable, get_provider
from workbench.attestation.tee.gramine import DEFAULT_ROOT, GramineProvider
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence
from workbench.errors import WorkbenchError

NOW = datetime(2025, 6, 1, tzinfo=UTC)
REPORT_DATA = bytes(range(64))


def _gramine(tmp_path: Path, quote: bytes, kind: str = "dcap") -> Path:
    root = tmp_path / "attestation"
    root.mkdir()
    (root / "attestation_type").write_text(kind + "\n")
    (root / "user_report_data").write_bytes(bytes(64))
    (root / "quote").write_bytes(quote)
    return root


def test_sgx_quote_through_gramine(vectors: Path, tmp_path: Path) -> None:
    quote = (vectors / "sgx/trustee-occlum-quote-v3.dat").read_bytes()
    root = _gramine(tmp_path, quote)
    provider = get_provider("gramine", root=root)
    assert (provider.name, provider.tee) == ("gramine", "sgx")
    evidence = provider.evidence(REPORT_DATA)
    assert (root / "user_report_data").read_bytes() == REPORT_DATA
    assert evidence == quote
    verified = verify_evidence(evidence, now=NOW)
    assert verified.tee == "sgx"
    assert verified.claims["mrenclave"] == (
        "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("none", "does not enable remote attestation"),
        ("epid", "EPID attestation is retired"),
        ("sgx-magic", "unknown attestation type 'sgx-magic'"),
    ],
)
def test_attestation_types_other_than_dcap(tmp_path: Path, kind: str, reason: str) -> None:
    root = _gramine(tmp_path, b"", kind)
    with pytest.raises(TeeUnavailable, match=reason) as err:
        GramineProvider(root=root).evidence(REPORT_DATA)
    assert str(root / "attestation_type") in str(err.value)
    assert (root / "user_report_data").read_bytes() == bytes(64)  # nothing was written


def test_quote_of_another_tee(vectors: Path, tmp_path: Path) -> None:
    root = _gramine(tmp_path, (vectors / "tdx/trustee-quote-v4.dat").read_bytes())
    with pytest.raises(WorkbenchError, match="tdx evidence, not an SGX quote"):
        GramineProvider(root=root).evidence(REPORT_DATA)


def test_quote_that_is_not_evidence(tmp_path: Path) -> None:
    root = _gramine(tmp_path, b"")
    with pytest.raises(WorkbenchError, match="quote: empty input"):
        GramineProvider(root=root).evidence(REPORT_DATA)


def test_outside_gramine_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(TeeUnavailable) as err:
        GramineProvider(root=tmp_path / "nope").evidence(REPORT_DATA)
    assert str(tmp_path / "nope" / "attestation_type") in str(err.value)
    assert "not running inside a Gramine-SGX enclave" in str(err.value)


@pytest.mark.skipif(DEFAULT_ROOT.exists(), reason="this process runs inside Gramine")
def test_default_path_on_this_machine_fails_without_fallback() -> None:
    with pytest.raises(TeeUnavailable, match="/dev/attestation/attestation_type not found"):
        get_provider("gramine").evidence(REPORT_DATA)


def test_report_data_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly 64 bytes"):
        GramineProvider(root=tmp_path).evidence(bytes(65))


def test_provider_table() -> None:
    assert isinstance(get_provider("simulated"), SimulatedProvider)
    with pytest.raises(WorkbenchError, match="unknown TEE provider 'sev' "
                       r"\(known: simulated, configfs-tsm, gramine, azure-vtpm\)"):
        get_provider("sev")
