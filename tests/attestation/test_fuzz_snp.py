"""Property tests: whatever the bytes, SEV-SNP parsing and verification fail only as typed.

``parse_report`` returns a report or raises MalformedEvidence; ``verify_report`` returns
only for an untouched vector and otherwise raises MalformedEvidence or EvidenceRejected.
About 9,000 examples in total (see EXAMPLES), bounded so the file runs in well under a
minute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.attestation.formats import snp_offsets as off
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.snp import SnpReport, parse_report
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.snp import verify_report

NOW = datetime(2025, 6, 1, tzinfo=UTC)
PAIRS = (
    ("go-sev-guest-attestation.bin", "go-sev-guest-vcek.der"),
    ("trustee-test-report.bin", "trustee-test-vcek.der"),
    ("trustee-vlek-report.bin", "trustee-vlek.der"),
)
EXAMPLES = {
    "arbitrary": 2000,
    "arbitrary_report_sized": 1500,
    "mutated": 2500,
    "fields": 1000,
    "verify_mutated": 1500,
    "verify_arbitrary_certs": 500,
}


def _settings(name: str):
    return settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def pairs(vectors: Path) -> list[tuple[bytes, bytes]]:
    folder = vectors / "sev-snp"
    return [((folder / r).read_bytes(), (folder / c).read_bytes()) for r, c in PAIRS]


def _parse_or_malformed(data: bytes) -> SnpReport | None:
    try:
        return parse_report(data)
    except MalformedEvidence as err:
        assert str(err).startswith("SEV-SNP report"), str(err)
        return None


# A mutation: (kind, position fraction, byte value, length).
_mutation = st.tuples(
    st.sampled_from(["set", "xor", "insert", "delete", "truncate", "extend", "zero_run"]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.integers(0, 255),
    st.integers(1, 64),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value, length in mutations:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if kind == "set" and out:
            out[at] = value
        elif kind == "xor" and out:
            out[at] ^= value or 1
        elif kind == "insert":
            out[at:at] = bytes([value]) * length
        elif kind == "delete":
            del out[at : at + length]
        elif kind == "truncate":
            del out[at:]
        elif kind == "extend":
            out += bytes([value]) * length
        elif kind == "zero_run":
            out[at : at + length] = bytes(len(out[at : at + length]))
    return bytes(out)


@_settings("arbitrary")
@given(data=st.binary(max_size=off.REPORT_SIZE + 200))
def test_arbitrary_bytes_parse_or_are_malformed(data: bytes):
    _parse_or_malformed(data)


@_settings("arbitrary_report_sized")
@given(data=st.binary(min_size=off.REPORT_SIZE, max_size=off.REPORT_SIZE))
def test_arbitrary_report_sized_bytes_parse_or_are_malformed(data: bytes):
    _parse_or_malformed(data)


@_settings("mutated")
@given(which=st.integers(0, len(PAIRS) - 1), mutations=st.lists(_mutation, max_size=6))
def test_mutated_vectors_parse_or_are_malformed(pairs, which: int, mutations):
    data = _mutate(pairs[which][0], mutations)
    report = _parse_or_malformed(data)
    if report is not None:
        assert len(data) == off.REPORT_SIZE
        assert report.raw == data


_field = st.sampled_from([(name, size) for name, _, size in off.FIELDS if size <= 8])


@_settings("fields")
@given(
    which=st.integers(0, len(PAIRS) - 1),
    edits=st.lists(st.tuples(_field, st.integers(0, 2**64 - 1)), min_size=1, max_size=4),
)
def test_random_field_values_parse_or_are_malformed(pairs, which: int, edits):
    data = bytearray(pairs[which][0])
    offsets = {name: offset for name, offset, _ in off.FIELDS}
    for (name, size), value in edits:
        offset = offsets[name]
        data[offset : offset + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    report = _parse_or_malformed(bytes(data))
    if report is not None:
        for key in ("reported", "current", "committed", "launch"):
            report.tcb(key)
        report.policy_flags, report.platform_flags  # noqa: B018


@_settings("verify_mutated")
@given(which=st.integers(0, len(PAIRS) - 1), mutations=st.lists(_mutation, max_size=4))
def test_verify_accepts_only_the_untouched_vector(pairs, which: int, mutations):
    original, cert = pairs[which]
    data = _mutate(original, mutations)
    try:
        verify_report(data, now=NOW, certs=[cert])
    except (MalformedEvidence, EvidenceRejected):
        assert data != original
    else:
        assert data == original


@_settings("verify_arbitrary_certs")
@given(
    which=st.integers(0, len(PAIRS) - 1),
    certs=st.lists(st.binary(max_size=300), max_size=3),
    pem=st.booleans(),
)
def test_verify_with_arbitrary_certificates_is_rejected(pairs, which: int, certs, pem: bool):
    if pem:
        certs = [
            b"-----BEGIN CERTIFICATE-----\n" + c + b"\n-----END CERTIFICATE-----\n" for c in certs
        ]
    with pytest.raises(EvidenceRejected) as caught:
        verify_report(pairs[which][0], now=NOW, certs=certs)
    assert caught.value.check == "endorsement-key"
