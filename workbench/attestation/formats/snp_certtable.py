"""The SEV-SNP certificate table a guest gets with an extended report (configfs-tsm ``auxblob``).

Layout (GHCB specification v2, section 4.1.8.1, "MSG_REPORT_REQ"): a list of 24-byte entries
``{guid: 16 bytes, offset: u32 LE, length: u32 LE}`` ended by an all-zero entry; each
offset counts from the start of the table, and the certificates follow the terminator. The
GUIDs are stored in their string byte order, as AMD's own tools (libuuid) and go-sev-guest
write them.

The host fills this table, so it is untrusted input: every entry must lie inside the blob,
after the table, be non-empty, and appear once. Nothing here says whether a certificate is
genuine; the verifier chains the VCEK/VLEK to the pinned AMD roots.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from workbench.attestation.formats.errors import MalformedEvidence

ENTRY = struct.Struct("<16sII")
TERMINATOR = bytes(ENTRY.size)
# A real table has three to five entries; the bound keeps a hostile blob from making us
# walk megabytes of headers.
MAX_ENTRIES = 64

# GUID -> what the GHCB specification says the entry holds.
KINDS: dict[uuid.UUID, str] = {
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ark",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ask",
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "vcek",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "vlek",
    uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea"): "crl",
}
# The entries that certify the key signing the report; the verifier needs exactly one.
ENDORSEMENT_KINDS = ("vcek", "vlek")


@dataclass(frozen=True)
class CertEntry:
    guid: uuid.UUID
    kind: str  # a KINDS value, or "other" for a GUID the specification does not name
    data: bytes


def _bad(reason: str) -> MalformedEvidence:
    return MalformedEvidence(f"SEV-SNP certificate table: {reason}")


def _headers(blob: bytes) -> list[tuple[uuid.UUID, int, int]]:
    headers = []
    for index in range(MAX_ENTRIES + 1):
        start = index * ENTRY.size
        if start + ENTRY.size > len(blob):
            raise _bad(f"ends after {index} entries without the all-zero terminator "
                       f"({len(blob)} bytes)")
        raw = blob[start:start + ENTRY.size]
        if raw == TERMINATOR:
            return headers
        guid, offset, length = ENTRY.unpack(raw)
        headers.append((uuid.UUID(bytes=guid), offset, length))
    raise _bad(f"more than {MAX_ENTRIES} entries")


def parse_cert_table(blob: bytes) -> tuple[CertEntry, ...]:
    """The entries of a certificate table; an empty blob is an empty table (no host certs)."""
    blob = bytes(blob)
    if not blob:
        return ()
    headers = _headers(blob)
    table_end = (len(headers) + 1) * ENTRY.size
    seen: set[uuid.UUID] = set()
    entries = []
    for guid, offset, length in headers:
        kind = KINDS.get(guid, "other")
        label = f"entry {guid} ({kind})"
        if guid in seen:
            raise _bad(f"{label} appears twice")
        seen.add(guid)
        if length == 0:
            raise _bad(f"{label} is empty")
        if offset < table_end:
            raise _bad(f"{label} starts at {offset}, inside the table (which ends at "
                       f"{table_end})")
        if offset + length > len(blob):
            raise _bad(f"{label} runs to byte {offset + length}, past the end of the "
                       f"{len(blob)}-byte blob")
        entries.append(CertEntry(guid, kind, blob[offset:offset + length]))
    return tuple(entries)


def endorsement_certificates(entries: tuple[CertEntry, ...]) -> tuple[bytes, ...]:
    """The VCEK/VLEK certificates among ``entries``: what the broker needs with the report
    (it pins ASK and ARK itself)."""
    return tuple(entry.data for entry in entries if entry.kind in ENDORSEMENT_KINDS)
