"""AMD's serial-0 VCEKs load without a warning, and only that warning is silenced."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from workbench.attestation.verify.certs import load_certificate
from workbench.attestation.verify.snp import verify_report


def _vcek(vectors: Path) -> bytes:
    return (vectors / "sev-snp/go-sev-guest-vcek.der").read_bytes()


def test_the_vector_vcek_really_triggers_the_serial_warning(vectors: Path):
    # Guards the tests below: without the package's filter, cryptography does warn.
    with pytest.warns(CryptographyDeprecationWarning, match="serial number which wasn't positive"):
        x509.load_der_x509_certificate(_vcek(vectors))


def test_loading_the_vcek_through_the_package_emits_no_warning(vectors: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cert = load_certificate(_vcek(vectors))
    # (Reading cert.serial_number would warn again: cryptography re-checks it on access,
    # which is why nothing in the verifier reads it.)
    assert cert.subject.rfc4514_string().startswith("CN=SEV-VCEK")


def test_verifying_with_serial_zero_certificates_emits_no_warning(vectors: Path):
    report = (vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        now = datetime(2025, 6, 1, tzinfo=UTC)
        evidence = verify_report(report, now=now, certs=[_vcek(vectors)])
        evidence.to_json()
    assert evidence.claims["signer"] == "vcek"


def test_other_cryptography_deprecation_warnings_still_surface(vectors: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cert = load_certificate(_vcek(vectors))
        # The naive-datetime accessor is deprecated: a different CryptographyDeprecationWarning
        # that must not be swallowed by the serial-number filter.
        with pytest.raises(CryptographyDeprecationWarning, match="naïve datetime"):
            _ = cert.not_valid_after
