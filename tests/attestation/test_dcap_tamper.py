"""Every single-byte change inside a signed region is rejected (full verify_quote each time).

Regions: header + body (signed by the attestation key) for an SGX v3, a TDX v4 and a TDX v5
quote, with two different changes per byte; and the QE report, its signature, the
attestation key, the quote signature and the QE auth data (each covered by a signature or
the QE binding) for one quote of each kind.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dcap_build import QUOTES, qe_block_at, signature_data_at

from workbench.attestation.formats import dcap_offsets as off
from workbench.attestation.formats.dcap import parse_quote
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.verify import dcap
from workbench.attestation.verify.result import EvidenceRejected

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _flip_all(data: bytes, start: int, end: int, mask: int) -> list[int]:
    """Positions in [start, end) whose change by ``mask`` was NOT rejected."""
    accepted = []
    buf = bytearray(data)
    for i in range(start, end):
        buf[i] ^= mask
        try:
            dcap.verify_quote(bytes(buf), now=NOW)
        except (MalformedEvidence, EvidenceRejected):
            pass
        else:
            accepted.append(i)
        buf[i] ^= mask
    return accepted


@pytest.mark.parametrize("name", ["sgx-v3", "tdx-v4", "tdx-v5"])
@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_byte_of_header_and_body(vectors, name, mask):
    data = (vectors / QUOTES[name]).read_bytes()
    dcap.verify_quote(data, now=NOW)  # the unchanged quote verifies
    signed = len(parse_quote(data).signed_data)
    assert _flip_all(data, 0, signed, mask) == []


@pytest.mark.parametrize("name", ["sgx-v3", "tdx-v5"])
def test_every_byte_of_the_signature_data_that_is_covered(vectors, name):
    data = (vectors / QUOTES[name]).read_bytes()
    quote = parse_quote(data)
    sig = signature_data_at(data)
    qe = qe_block_at(data)
    regions = {
        "quote signature": (sig + off.SIG_QUOTE_SIGNATURE, sig + off.SIG_ATTESTATION_KEY),
        "attestation key": (sig + off.SIG_ATTESTATION_KEY, sig + off.SIG_AFTER_KEY),
        "QE report and its signature": (qe, qe + off.QE_CERT_AUTH_DATA_SIZE),
        "QE auth data": (
            qe + off.QE_CERT_AUTH_DATA,
            qe + off.QE_CERT_AUTH_DATA + len(quote.qe_auth_data),
        ),
    }
    for region, (start, end) in regions.items():
        assert end > start
        assert _flip_all(data, start, end, 0x01) == [], region
