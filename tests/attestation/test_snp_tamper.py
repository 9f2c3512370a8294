"""Every single-byte change to a signed SEV-SNP report is refused, end to end.

For each vector below, every byte of the signed region (0x000..0x2A0) is changed in three
ways and the result goes through ``verify_report``: it must raise MalformedEvidence (the
change broke the structure) or EvidenceRejected (it still parses, and a check refuses it).
The signature field is covered the same way: altered R or S fails the signature, and the
unused tail must stay zero.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workbench.attestation.formats import snp_offsets as off
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.snp import verify_report

NOW = datetime(2025, 6, 1, tzinfo=UTC)
VECTORS = {
    "go-sev-guest": ("go-sev-guest-attestation.bin", "go-sev-guest-vcek.der"),
    "trustee-vlek": ("trustee-vlek-report.bin", "trustee-vlek.der"),
}
# Flip the lowest bit, flip the highest bit, replace with the complement.
CHANGES = (lambda b: b ^ 0x01, lambda b: b ^ 0x80, lambda b: b ^ 0xFF)


def _outcomes(data: bytes, cert: bytes, positions: range) -> Counter[str]:
    verify_report(data, now=NOW, certs=[cert])  # the untouched report verifies
    outcomes: Counter[str] = Counter()
    for index in positions:
        for change in CHANGES:
            tampered = bytearray(data)
            tampered[index] = change(tampered[index])
            try:
                verify_report(bytes(tampered), now=NOW, certs=[cert])
            except MalformedEvidence:
                outcomes["malformed"] += 1
            except EvidenceRejected as err:
                outcomes[err.check] += 1
            else:
                pytest.fail(f"byte 0x{index:03x} changed and the report still verified")
    return outcomes


@pytest.mark.parametrize("which", sorted(VECTORS))
def test_every_signed_byte_change_is_refused(vectors: Path, which: str):
    report, cert = VECTORS[which]
    data = (vectors / "sev-snp" / report).read_bytes()
    der = (vectors / "sev-snp" / cert).read_bytes()
    outcomes = _outcomes(data, der, range(off.SIGNED_END))
    assert sum(outcomes.values()) == off.SIGNED_END * len(CHANGES)
    # Both kinds happen: structural refusals and, mostly, the signature check.
    assert outcomes["malformed"] > 0
    assert outcomes["report-signature"] > off.SIGNED_END


def test_every_signature_byte_change_is_refused(vectors: Path):
    report, cert = VECTORS["go-sev-guest"]
    data = (vectors / "sev-snp" / report).read_bytes()
    der = (vectors / "sev-snp" / cert).read_bytes()
    outcomes = _outcomes(data, der, range(off.SIGNATURE, off.REPORT_SIZE))
    rs_bytes = off.ECDSA_SIGNATURE_END - off.SIGNATURE
    assert outcomes["report-signature"] == rs_bytes * len(CHANGES)
    assert outcomes["malformed"] == (off.REPORT_SIZE - off.ECDSA_SIGNATURE_END) * len(CHANGES)
