"""End-to-end SEV-SNP verification of the real vectors, with the results SOURCES.md states."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from snp_synthetic import edit

from workbench.attestation.formats.snp import parse_report
from workbench.attestation.verify.certs import load_certificate
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.snp import CHECKS, _cert_chain, _endorsement_key, verify_report

# Inside every vector certificate's validity, including the VLEK's (2024-12-10..2025-12-10).
NOW = datetime(2025, 6, 1, tzinfo=UTC)

VALID = {
    "go-sev-guest": ("sev-snp/go-sev-guest-attestation.bin", "sev-snp/go-sev-guest-vcek.der"),
    "trustee-vcek": ("sev-snp/trustee-test-report.bin", "sev-snp/trustee-test-vcek.der"),
    "trustee-vlek": ("sev-snp/trustee-vlek-report.bin", "sev-snp/trustee-vlek.der"),
}
PREAMBLE_CLAIMS = {
    "measurement",
    "host_data",
    "policy",
    "debug",
    "vmpl",
    "reported_tcb",
    "committed_tcb",
    "chip_id",
    "report_id",
    "signer",
    "product",
    "guest_svn",
    "family_id",
    "image_id",
    "report_version",
    "report_data",
}


def _pair(vectors: Path, which: str) -> tuple[bytes, bytes]:
    report, cert = VALID[which]
    return (vectors / report).read_bytes(), (vectors / cert).read_bytes()


def _spl(cert_der: bytes, arc: str) -> int:
    """A KDS SPL extension read with cryptography alone (DER INTEGER: tag, length, value)."""
    cert = load_certificate(cert_der)
    for ext in cert.extensions:
        if ext.oid.dotted_string == f"1.3.6.1.4.1.3704.1.3.{arc}":
            value = ext.value.value
            return int.from_bytes(value[2:], "big")
    raise AssertionError(f"no SPL extension 3.{arc}")


@pytest.mark.parametrize("which", sorted(VALID))
def test_real_report_verifies_with_its_key(vectors: Path, which: str):
    report, cert = _pair(vectors, which)
    evidence = verify_report(report, now=NOW, certs=[cert])
    assert evidence.tee == "snp"
    assert [c.name for c in evidence.checks] == list(CHECKS)
    assert all(c.ok for c in evidence.checks)
    assert PREAMBLE_CLAIMS <= set(evidence.claims)
    claims = evidence.claims
    # SOURCES.md: the trustee VLEK vector is signed by a VLEK, the others by VCEKs.
    assert claims["signer"] == ("vlek" if which == "trustee-vlek" else "vcek")
    assert claims["product"] == "milan"
    assert claims["reported_tcb"] == {
        "bootloader": _spl(cert, "1"),
        "tee": _spl(cert, "2"),
        "snp": _spl(cert, "3"),
        "microcode": _spl(cert, "8"),
    }
    assert claims["debug"] is bool(int.from_bytes(report[8:16], "little") >> 19 & 1)
    assert claims["measurement"] == report[0x90:0xC0].hex()
    assert claims["report_data"] == report[0x50:0x90].hex()
    assert evidence.report_data == report[0x50:0x90]
    assert [c.subject.split(",")[0] for c in evidence.chain][1:] == [
        "CN=SEV-VLEK-Milan" if "vlek" in which else "CN=SEV-Milan",
        "CN=ARK-Milan",
    ]
    json.dumps(evidence.to_json())


def test_go_sev_guest_report_is_a_debug_guest(vectors: Path):
    report, cert = _pair(vectors, "go-sev-guest")
    assert verify_report(report, now=NOW, certs=[cert]).claims["debug"] is True


def test_pem_vcek_and_matching_pinned_bundle_are_accepted(vectors: Path):
    report, cert = _pair(vectors, "go-sev-guest")
    pem = load_certificate(cert).public_bytes(Encoding.PEM)
    bundle = (vectors / "roots/amd-ask_ark_milan.pem").read_bytes()
    evidence = verify_report(report, now=NOW, certs=[pem, bundle])
    assert evidence.claims["signer"] == "vcek"


def test_naive_now_is_read_as_utc(vectors: Path):
    report, cert = _pair(vectors, "trustee-vlek")
    verify_report(report, now=datetime(2025, 6, 1), certs=[cert])
    with pytest.raises(EvidenceRejected, match="expired"):
        verify_report(report, now=datetime(2025, 12, 11), certs=[cert])


# -- refusals with real vectors -------------------------------------------------------------


def _rejected(data: bytes, certs: list[bytes], now: datetime = NOW) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as caught:
        verify_report(data, now=now, certs=certs)
    err = caught.value
    assert err.checks, "a rejection carries the checks run so far"
    assert err.checks[-1].name == err.check
    assert not err.checks[-1].ok
    assert all(c.ok for c in err.checks[:-1])
    return err


def test_vlek_is_refused_at_the_real_current_time_as_expired(vectors: Path):
    report, cert = _pair(vectors, "trustee-vlek")
    now = datetime.now(UTC)
    if now <= load_certificate(cert).not_valid_after_utc:
        pytest.skip("the clock says the VLEK has not expired yet")
    err = _rejected(report, [cert], now)
    assert err.check == "cert-chain"
    assert "certificate 'SEV-VLEK' expired on 2025-12-10" in err.reason


def test_vlek_is_refused_before_it_was_issued(vectors: Path):
    report, cert = _pair(vectors, "trustee-vlek")
    err = _rejected(report, [cert], datetime(2024, 1, 1, tzinfo=UTC))
    assert err.check == "cert-chain"
    assert "'SEV-VLEK' is not valid before 2024-12-10" in err.reason


@pytest.mark.parametrize("name", ["legacy", "new"])
def test_invalid_trustee_vceks_are_rejected(vectors: Path, name: str):
    report = (vectors / "sev-snp/trustee-test-report.bin").read_bytes()
    cert = (vectors / f"negative/trustee-vcek-invalid-{name}.der").read_bytes()
    err = _rejected(report, [cert])
    assert err.check == "cert-chain"
    assert "certificate 'SEV-VCEK' is not signed by 'SEV-Milan'" in err.reason


@pytest.mark.parametrize(
    ("bundle", "offender"),
    [("amd-ask_ark_genoa.pem", "SEV-Genoa"), ("amd-ask_ark_milan_vlek.pem", "SEV-VLEK-Milan")],
)
def test_vcek_with_a_wrong_product_chain_is_rejected(vectors: Path, bundle: str, offender: str):
    report, cert = _pair(vectors, "go-sev-guest")
    wrong = (vectors / "roots" / bundle).read_bytes()
    err = _rejected(report, [cert, wrong])
    assert err.check == "cert-chain"
    assert f"certificate '{offender}' given with --certs is not the pinned AMD ASK" in err.reason
    assert "for Milan VCEKs" in err.reason


def test_vcek_checked_against_another_products_pinned_chain_fails(vectors: Path):
    _, cert = _pair(vectors, "go-sev-guest")
    _, key = _endorsement_key([cert])
    with pytest.raises(EvidenceRejected, match="'SEV-VCEK' is not signed by 'SEV-Genoa'"):
        _cert_chain(key, "genoa", NOW)


def test_without_certs_the_report_is_unverifiable(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    err = _rejected(report, [])
    assert err.check == "endorsement-key"
    assert "unverifiable without the VCEK or VLEK" in err.reason
    assert "--certs" in err.reason


def test_only_ask_and_ark_is_still_unverifiable(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    err = _rejected(report, [(vectors / "roots/amd-ask_ark_milan.pem").read_bytes()])
    assert err.check == "endorsement-key"
    assert "no VCEK or VLEK among the certificates given ('SEV-Milan', 'ARK-Milan')" in err.reason


def test_garbage_certificate_is_refused(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    err = _rejected(report, [b"not a certificate"])
    assert err.check == "endorsement-key"
    assert "certificate 1 is neither a DER nor a PEM X.509 certificate" in err.reason


def test_non_bytes_certificate_is_refused(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    err = _rejected(report, ["/path/to/vcek.der"])  # type: ignore[list-item]
    assert err.check == "endorsement-key"
    assert "certificate 1 is str, not bytes" in err.reason


def test_two_endorsement_keys_are_refused(vectors: Path):
    report, cert = _pair(vectors, "go-sev-guest")
    other = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    err = _rejected(report, [cert, other])
    assert err.check == "endorsement-key"
    assert "2 VCEK/VLEK certificates given; give exactly one" in err.reason


def test_another_chips_vcek_does_not_verify_the_report(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    other = (vectors / "sev-snp/trustee-test-vcek.der").read_bytes()
    err = _rejected(report, [other])
    assert err.check == "report-signature"
    assert "signature does not verify with the VCEK's public key" in err.reason


def test_vlek_given_for_a_vcek_report_does_not_verify(vectors: Path):
    report, _ = _pair(vectors, "go-sev-guest")
    _, vlek = _pair(vectors, "trustee-vlek")
    err = _rejected(report, [vlek])
    assert err.check == "report-signature"


def test_unsigned_report_is_refused(vectors: Path):
    report, cert = _pair(vectors, "go-sev-guest")
    unsigned = edit(report, signer_info=7 << 2)
    assert parse_report(unsigned).signing_key == "none"
    err = _rejected(unsigned, [cert])
    assert err.check == "report-signature"
    assert "the report says it is unsigned" in err.reason


def test_report_cpuid_of_another_product_is_refused(vectors: Path):
    report, cert = _pair(vectors, "trustee-vlek")
    err = _rejected(edit(report, cpuid_mod_id=0x11), [cert])
    assert err.check == "product"
    assert "model 0x11 stepping 1 is genoa but the VLEK is for milan" in err.reason


def test_report_cpuid_of_an_unknown_product_is_refused(vectors: Path):
    report, cert = _pair(vectors, "trustee-vlek")
    err = _rejected(edit(report, cpuid_fam_id=0x17), [cert])
    assert err.check == "product"
    assert "CPUID family 0x17 model 0x01 stepping 1 is not a supported product" in err.reason
