"""Whether evidence's report data carries a session's binding (``tee.binding`` computes it).

Here, below appraisal, so the report-data rule and the broker compare the same way: all 64
bytes, or the 48-byte prefix a SHA-384 vTPM's quote extraData holds (az-*).
"""

from __future__ import annotations

import hmac

REPORT_DATA_SIZE = 64
# The part of the binding a TPM quote's extraData carries (TPM2B_DATA of a SHA-384 TPM).
TPM_BINDING_SIZE = 48
# Report data sizes that carry a binding: whole, or its TPM-sized prefix.
BOUND_SIZES = (REPORT_DATA_SIZE, TPM_BINDING_SIZE)


def binding_matches(report_data: bytes, expected: bytes) -> bool:
    """Constant-time comparison of report data against the expected binding: all 64 bytes,
    or the first 48 when the report data is a TPM quote's extraData of that size."""
    report_data, expected = bytes(report_data), bytes(expected)
    if len(report_data) not in BOUND_SIZES or len(expected) != REPORT_DATA_SIZE:
        return False
    return hmac.compare_digest(report_data, expected[:len(report_data)])
