"""Tell evidence formats apart by their fixed headers, before any parser runs.

- DCAP quote (SGX or TDX): u16 LE version 3, 4 or 5 at offset 0, u16 LE attestation key
  type 2 (ECDSA P-256) at 2, u32 LE TEE type at 4: 0x00 SGX, 0x81 TDX.
- SEV-SNP attestation report: u32 LE version 2..5 at offset 0 and exactly 1184 bytes.
- Azure vTPM evidence (az-snp-vtpm, az-tdx-vtpm): a bare HCL report (b"HCLA" at offset 0)
  or a JSON object with an ``hcl_report`` (or v0's ``report`` and ``quote``) member; tried
  before the simulated envelope, which is also a JSON object but never has those members.
- Simulated-TEE envelope: UTF-8 text whose first non-blank character opens a JSON object.

The headers cannot collide: a DCAP quote's first u32 is at least 0x00020003, an SNP
report's at most 5, and neither starts with '{'. Only the parser decides whether the rest
is well formed.
"""

from __future__ import annotations

import struct

from workbench.attestation.formats.azure_evidence import azure_tee
from workbench.attestation.formats.errors import MalformedEvidence

DCAP_VERSION_OFFSET = 0
DCAP_KEY_TYPE_OFFSET = 2
DCAP_TEE_TYPE_OFFSET = 4
DCAP_HEADER_MIN = 8
DCAP_VERSIONS = frozenset({3, 4, 5})
DCAP_KEY_TYPE_ECDSA_P256 = 2
DCAP_TEE_TYPES = {0x00: "sgx", 0x81: "tdx"}

SNP_VERSION_OFFSET = 0
SNP_REPORT_SIZE = 1184
SNP_VERSIONS = range(2, 6)

_JSON_BLANKS = b" \t\r\n"


def _dcap(data: bytes) -> str | None:
    if len(data) < DCAP_HEADER_MIN:
        return None
    (version,) = struct.unpack_from("<H", data, DCAP_VERSION_OFFSET)
    (key_type,) = struct.unpack_from("<H", data, DCAP_KEY_TYPE_OFFSET)
    (tee_type,) = struct.unpack_from("<I", data, DCAP_TEE_TYPE_OFFSET)
    if version not in DCAP_VERSIONS or key_type != DCAP_KEY_TYPE_ECDSA_P256:
        return None
    return DCAP_TEE_TYPES.get(tee_type)


def _snp(data: bytes) -> str | None:
    if len(data) != SNP_REPORT_SIZE:
        return None
    (version,) = struct.unpack_from("<I", data, SNP_VERSION_OFFSET)
    return "snp" if version in SNP_VERSIONS else None


def _simulated(data: bytes) -> str | None:
    return "simulated" if data.lstrip(_JSON_BLANKS).startswith(b"{") else None


DETECTORS = (_dcap, _snp, azure_tee, _simulated)


def detect_tee(data: bytes) -> str:
    """Return "sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm" or "simulated";
    MalformedEvidence if no header fits."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence("evidence must be bytes")
    data = bytes(data)
    if not data:
        raise MalformedEvidence("empty input: no evidence")
    for detector in DETECTORS:
        tee = detector(data)
        if tee is not None:
            return tee
    raise MalformedEvidence(
        f"unrecognised evidence ({len(data)} bytes, starting {data[:8].hex()}): not a DCAP "
        "quote (SGX/TDX), an SEV-SNP report, Azure vTPM evidence or a simulated-TEE envelope"
    )
