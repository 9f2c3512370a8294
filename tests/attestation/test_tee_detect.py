"""Format detection by header, and the verify_evidence dispatcher built on it."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.result import EvidenceRejected

NOW = datetime(2025, 6, 1, tzinfo=UTC)

EXPECTED = {
    "sgx/trustee-occlum-quote-v3.dat": "sgx",
    "negative/intel-qvl-test-root-sgx-quote.dat": "sgx",
    "tdx/go-tdx-guest-quote-v4.dat": "tdx",
    "tdx/go-tdx-guest-quote-v5.dat": "tdx",
    "tdx/trustee-quote-v4.dat": "tdx",
    "tdx/trustee-quote-v5.dat": "tdx",
    "negative/intel-qvl-test-root-tdx-quote.dat": "tdx",
    "sev-snp/go-sev-guest-attestation.bin": "snp",
    "sev-snp/trustee-test-report.bin": "snp",
    "sev-snp/trustee-vlek-report.bin": "snp",
}
NOT_EVIDENCE = [
    "sev-snp/go-sev-guest-vcek.der",
    "negative/trustee-vcek-invalid-new.der",
    "roots/intel-sgx-root-ca.pem",
    "tdx/collateral/rootcrl.der",
    "SOURCES.md",
]


@pytest.mark.parametrize(("name", "tee"), EXPECTED.items())
def test_real_evidence_is_detected(vectors: Path, name: str, tee: str) -> None:
    assert detect_tee((vectors / name).read_bytes()) == tee


@pytest.mark.parametrize("name", NOT_EVIDENCE)
def test_certificates_and_text_are_not_evidence(vectors: Path, name: str) -> None:
    with pytest.raises(MalformedEvidence, match="unrecognised evidence"):
        detect_tee((vectors / name).read_bytes())


def _dcap_header(version: int, key_type: int, tee_type: int) -> bytes:
    return struct.pack("<HHI", version, key_type, tee_type) + bytes(100)


@pytest.mark.parametrize(
    ("header", "tee"),
    [
        (_dcap_header(3, 2, 0), "sgx"),
        (_dcap_header(4, 2, 0x81), "tdx"),
        (_dcap_header(5, 2, 0x81), "tdx"),
        (struct.pack("<I", 2) + bytes(1180), "snp"),
        (struct.pack("<I", 5) + bytes(1180), "snp"),
        (b"  \n{", "simulated"),
    ],
)
def test_headers(header: bytes, tee: str) -> None:
    assert detect_tee(header) == tee


@pytest.mark.parametrize(
    "header",
    [
        _dcap_header(2, 2, 0),  # DCAP version 2 (EPID era) is not supported
        _dcap_header(6, 2, 0),
        _dcap_header(4, 3, 0x81),  # attestation key type 3 (P-384) is not ECDSA P-256
        _dcap_header(4, 2, 0x80),  # unknown TEE type
        struct.pack("<I", 1) + bytes(1180),  # SNP version 1
        struct.pack("<I", 6) + bytes(1180),
        struct.pack("<I", 2) + bytes(1181),  # an SNP header of the wrong length
        struct.pack("<I", 2) + bytes(1179),
        b"\x03\x00\x02\x00\x00\x00",  # too short for the DCAP header
        b"[1, 2]",
        b"\x00",
    ],
)
def test_near_misses_are_refused(header: bytes) -> None:
    with pytest.raises(MalformedEvidence, match="unrecognised evidence"):
        detect_tee(header)


def test_empty_and_non_bytes() -> None:
    with pytest.raises(MalformedEvidence, match="empty input"):
        detect_tee(b"")
    with pytest.raises(MalformedEvidence, match="evidence must be bytes"):
        detect_tee("text")  # type: ignore[arg-type]


# --- the dispatcher ----------------------------------------------------------------------


@pytest.fixture
def simulated_evidence() -> bytes:
    return SimulatedProvider(clock=lambda: NOW).evidence(bytes(64))


def test_dispatches_simulated_evidence(simulated_evidence: bytes) -> None:
    result = verify_evidence(simulated_evidence, now=NOW)
    assert result.tee == "simulated" and result.simulated
    assert verify_evidence(simulated_evidence, tee="simulated", now=NOW).tee == "simulated"


def test_dispatches_snp_reports_with_their_vcek(vectors: Path) -> None:
    report = (vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes()
    vcek = (vectors / "sev-snp/go-sev-guest-vcek.der").read_bytes()
    result = verify_evidence(report, now=NOW, certs=[vcek])
    assert result.tee == "snp" and not result.simulated


def test_snp_without_vcek_is_unverifiable(vectors: Path) -> None:
    report = (vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes()
    with pytest.raises(EvidenceRejected) as err:
        verify_evidence(report, now=NOW)
    assert err.value.check == "endorsement-key"
    assert "unverifiable" in err.value.reason


def test_requested_type_must_match(vectors: Path, simulated_evidence: bytes) -> None:
    quote = (vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes()
    with pytest.raises(MalformedEvidence, match="evidence is TDX evidence, not sgx"):
        verify_evidence(quote, tee="sgx", now=NOW)
    with pytest.raises(MalformedEvidence, match="evidence is SIMULATED evidence, not snp"):
        verify_evidence(simulated_evidence, tee="snp", now=NOW)


def test_requested_type_parser_explains_garbage() -> None:
    with pytest.raises(MalformedEvidence, match="simulated evidence: not UTF-8 text"):
        verify_evidence(b"\xff" * 10, tee="simulated", now=NOW)


def test_unknown_type_and_naive_time_are_caller_errors(simulated_evidence: bytes) -> None:
    with pytest.raises(ValueError, match="tee must be one of"):
        verify_evidence(simulated_evidence, tee="sev", now=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_evidence(simulated_evidence, now=datetime(2025, 1, 1))


# --- dispatch to the DCAP verifier -----------------------------------------------------------

COLLATERAL_TIME = datetime(2023, 6, 20, tzinfo=UTC)  # inside the TDX collateral's validity


@pytest.mark.parametrize(
    ("name", "tee"),
    [("sgx/trustee-occlum-quote-v3.dat", "sgx"), ("tdx/go-tdx-guest-quote-v4.dat", "tdx"),
     ("tdx/trustee-quote-v5.dat", "tdx")],
)
def test_dispatches_dcap_quotes(vectors: Path, name: str, tee: str) -> None:
    data = (vectors / name).read_bytes()
    result = verify_evidence(data, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert result.tee == tee and result.tcb_status is None
    assert verify_evidence(data, tee=tee, now=datetime(2025, 3, 1, tzinfo=UTC)).tee == tee


def test_dcap_rejection_passes_through(vectors: Path) -> None:
    """go-tdx-guest's v5 sample has a PCK certificate issued 2026-01-27: refused before."""
    quote = (vectors / "tdx/go-tdx-guest-quote-v5.dat").read_bytes()
    with pytest.raises(EvidenceRejected) as err:
        verify_evidence(quote, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert err.value.check == "pck-chain"
    assert "is not valid before 2026-01-27" in err.value.reason


@pytest.mark.parametrize("name", ["negative/intel-qvl-test-root-sgx-quote.dat",
                                  "negative/intel-qvl-test-root-tdx-quote.dat"])
def test_test_root_quotes_are_rejected(vectors: Path, name: str) -> None:
    with pytest.raises(EvidenceRejected) as err:
        verify_evidence((vectors / name).read_bytes(), now=NOW)
    assert err.value.check == "pck-chain"


def test_collateral_reaches_the_dcap_verifier(vectors: Path) -> None:
    from workbench.attestation.verify.collateral import load_collateral_dir

    collateral = load_collateral_dir(vectors / "tdx/collateral")
    quote = (vectors / "tdx/trustee-quote-v4.dat").read_bytes()
    assert verify_evidence(quote, now=COLLATERAL_TIME, collateral=collateral).tcb_status == (
        "UpToDate"
    )
    with pytest.raises(EvidenceRejected) as err:
        verify_evidence(quote, now=datetime.now(UTC), collateral=collateral)
    assert "expired" in err.value.reason


def test_missing_verifier_is_named() -> None:
    from workbench.attestation.verify import VerifierUnavailable, _load

    with pytest.raises(VerifierUnavailable) as err:
        _load("workbench.attestation.verify.absent", "verify_absent")
    assert err.value.check == "verifier"
    assert "workbench.attestation.verify.absent.verify_absent is not available" in err.value.reason
