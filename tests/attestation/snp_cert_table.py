"""Builds SEV-SNP certificate tables the way a host does (GHCB v2 §4.1.8.1), for tests.

Written from the specification independently of the parser: 24-byte headers (GUID in string
byte order, offset and length as little-endian u32), an all-zero terminator, then the
certificates, each offset counted from the table's start.
"""

from __future__ import annotations

import struct
import uuid

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

GUIDS = {
    "ark": "c0b406a4-a803-4952-9743-3fb6014cd0ae",
    "ask": "4ab7b379-bbac-4fe4-a02f-05aef327c782",
    "vcek": "63da758d-e664-4564-adc5-f4b93be8accd",
    "vlek": "a8074bc2-a25a-483e-aae6-39c045a0b8a1",
}


def build_table(entries: list[tuple[str, bytes]]) -> bytes:
    """``entries``: (kind from GUIDS or a GUID string, certificate bytes)."""
    header_size = 24 * (len(entries) + 1)
    headers, body = b"", b""
    for kind, data in entries:
        guid = uuid.UUID(GUIDS.get(kind, kind)).bytes
        headers += guid + struct.pack("<II", header_size + len(body), len(data))
        body += data
    return headers + bytes(24) + body


def ask_ark_der(pem_path) -> tuple[bytes, bytes]:
    ask, ark = x509.load_pem_x509_certificates(pem_path.read_bytes())
    return ask.public_bytes(Encoding.DER), ark.public_bytes(Encoding.DER)
