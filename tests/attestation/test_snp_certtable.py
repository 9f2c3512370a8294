"""The SEV-SNP certificate table (configfs-tsm auxblob): real certificates, hostile layouts."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
from snp_cert_table import GUIDS, ask_ark_der, build_table

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.snp_certtable import (
    MAX_ENTRIES,
    endorsement_certificates,
    parse_cert_table,
)


@pytest.fixture
def certs(vectors: Path) -> dict[str, bytes]:
    ask, ark = ask_ark_der(vectors / "roots/amd-ask_ark_milan.pem")
    return {"vcek": (vectors / "sev-snp/trustee-test-vcek.der").read_bytes(),
            "ask": ask, "ark": ark}


def test_a_host_table_gives_each_certificate_and_the_vcek(certs: dict[str, bytes]) -> None:
    table = build_table([("ark", certs["ark"]), ("ask", certs["ask"]),
                         ("vcek", certs["vcek"])])
    entries = parse_cert_table(table)
    assert [(e.kind, e.data) for e in entries] == [
        ("ark", certs["ark"]), ("ask", certs["ask"]), ("vcek", certs["vcek"])]
    assert str(entries[2].guid) == GUIDS["vcek"]
    assert endorsement_certificates(entries) == (certs["vcek"],)


def test_unknown_guids_are_kept_as_other_and_not_forwarded(certs: dict[str, bytes]) -> None:
    vendor = "11111111-2222-3333-4444-555555555555"
    entries = parse_cert_table(build_table([(vendor, b"x"), ("vlek", certs["vcek"])]))
    assert [e.kind for e in entries] == ["other", "vlek"]
    assert endorsement_certificates(entries) == (certs["vcek"],)


def test_empty_blob_and_empty_table_have_no_certificates() -> None:
    assert parse_cert_table(b"") == ()
    assert parse_cert_table(bytes(24)) == ()


def _header(kind: str, offset: int, length: int) -> bytes:
    return uuid.UUID(GUIDS[kind]).bytes + struct.pack("<II", offset, length)


HOSTILE = [
    ("no terminator", _header("vcek", 48, 4) + b"abcd",
     "ends after 1 entries without the all-zero terminator (28 bytes)"),
    ("truncated header", b"\x01" * 10,
     "ends after 0 entries without the all-zero terminator (10 bytes)"),
    ("past the end", _header("vcek", 48, 100) + bytes(24) + b"abcd",
     f"entry {GUIDS['vcek']} (vcek) runs to byte 148, past the end of the 52-byte blob"),
    ("inside the table", _header("vcek", 8, 4) + bytes(24) + b"abcd",
     f"entry {GUIDS['vcek']} (vcek) starts at 8, inside the table (which ends at 48)"),
    ("empty entry", _header("ask", 48, 0) + bytes(24), f"entry {GUIDS['ask']} (ask) is empty"),
    ("twice", _header("vcek", 72, 2) + _header("vcek", 74, 2) + bytes(24) + b"abcd",
     f"entry {GUIDS['vcek']} (vcek) appears twice"),
]


@pytest.mark.parametrize(("case", "blob", "reason"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_tables_are_refused_with_the_reason(case: str, blob: bytes, reason: str
                                                    ) -> None:
    with pytest.raises(MalformedEvidence) as err:
        parse_cert_table(blob)
    assert str(err.value) == f"SEV-SNP certificate table: {reason}"


def test_a_table_with_too_many_entries_is_refused_before_walking_it() -> None:
    blob = b"".join(uuid.uuid4().bytes + struct.pack("<II", 0, 1)
                    for _ in range(MAX_ENTRIES + 1)) + bytes(24)
    with pytest.raises(MalformedEvidence, match=f"more than {MAX_ENTRIES} entries"):
        parse_cert_table(blob)
