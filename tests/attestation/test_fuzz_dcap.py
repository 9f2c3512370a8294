"""Property tests: DCAP parsers and the verifier fail only with their typed errors.

About 10,600 generated cases in total (the counts are in each ``settings``): arbitrary
bytes, quote-shaped bytes, mutated real quotes, quotes whose certificates' DER is edited,
mutated and arbitrary collateral JSON, damaged collateral files and PCK extension DER.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dcap_build import QUOTES, with_certification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.attestation.formats.dcap import parse_quote
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.intel_collateral import (
    parse_enclave_identity,
    parse_tcb_info,
)
from workbench.attestation.verify import dcap, intel_extensions
from workbench.attestation.verify.collateral import load_collateral_dir
from workbench.attestation.verify.intel_chain import load_pck_chain
from workbench.attestation.verify.result import EvidenceRejected
from workbench.errors import InputError

VECTORS = Path(__file__).parents[2].parent / "shared" / "vectors"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
INSIDE = datetime(2023, 6, 20, tzinfo=UTC)
FAST = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _read(relative: str) -> bytes:
    path = VECTORS / relative
    return path.read_bytes() if path.is_file() else b""


# Loaded at import so strategies can sample them; tests skip through the fixture if absent.
REAL_QUOTES = [q for q in (_read(p) for p in QUOTES.values()) if q]
COLLATERAL_FILES = {
    "tcb": [
        _read("tdx/collateral/sample_tcbInfo_response"),
        _read("tdx/collateral/sample_tcbinfo_response_v5"),
        _read("sgx/collateral/tcbInfo.json"),
    ],
    "identity": [
        _read("tdx/collateral/sample_qeIdentity_response"),
        _read("sgx/collateral/enclaveIdentity.json"),
    ],
}


@pytest.fixture(autouse=True, scope="module")
def _need_vectors(vectors: Path) -> None:
    assert REAL_QUOTES, f"no quotes read from {vectors}"


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    buf = bytearray(data)
    for position, value in edits:
        buf[position % len(buf)] = value
    if cut is not None:
        del buf[cut % (len(buf) + 1) :]
    return bytes(buf) + tail


mutated_quotes = st.builds(
    _mutate,
    st.sampled_from(REAL_QUOTES or [b"\0"]),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.none() | st.integers(0, 10_000),
    st.binary(max_size=16),
)

# Bytes that pass the header checks, so the generator reaches the deeper structure.
quote_shaped = st.builds(
    lambda version, tee, body_type, rest: (
        version.to_bytes(2, "little")
        + (2).to_bytes(2, "little")
        + tee.to_bytes(4, "little")
        + bytes(40)
        + (body_type.to_bytes(2, "little") + (648).to_bytes(4, "little") if version == 5 else b"")
        + rest
    ),
    st.sampled_from([3, 4, 5]),
    st.sampled_from([0x00, 0x81]),
    st.sampled_from([1, 2, 3]),
    st.binary(min_size=0, max_size=6000),
)


def _parse_or_malformed(data: bytes) -> None:
    try:
        parse_quote(data)
    except MalformedEvidence:
        pass


def _verify_or_typed(data: bytes, **kwargs) -> None:
    try:
        dcap.verify_quote(data, **kwargs)
    except (MalformedEvidence, EvidenceRejected):
        pass


@settings(max_examples=2500, **FAST)
@given(st.binary(max_size=6000))
def test_parse_arbitrary_bytes(data):
    _parse_or_malformed(data)


@settings(max_examples=1500, **FAST)
@given(quote_shaped)
def test_parse_quote_shaped_bytes(data):
    _parse_or_malformed(data)


@settings(max_examples=1500, **FAST)
@given(mutated_quotes)
def test_parse_mutated_quotes(data):
    _parse_or_malformed(data)


@settings(max_examples=1500, **FAST)
@given(mutated_quotes)
def test_verify_mutated_quotes(data):
    _verify_or_typed(data, now=NOW)


_TDX_COLLATERAL = (
    load_collateral_dir(VECTORS / "tdx" / "collateral")
    if (VECTORS / "tdx" / "collateral").is_dir()
    else None
)


@settings(max_examples=500, **FAST)
@given(mutated_quotes)
def test_verify_mutated_quotes_with_collateral(data):
    _verify_or_typed(data, now=INSIDE, collateral=_TDX_COLLATERAL)


def _with_mutated_certificate(quote: bytes, index: int, edits: list[tuple[int, int]]) -> bytes:
    chain = load_pck_chain(parse_quote(quote).certification.data)
    ders = [bytearray(d) for d in chain.ders]
    target = ders[index % len(ders)]
    for position, value in edits:
        target[position % len(target)] = value
    pem = b"".join(
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE-----\n"
        for der in ders
    )
    return with_certification(quote, pem)


@settings(max_examples=1000, **FAST)
@given(
    st.sampled_from(REAL_QUOTES or [b"\0"]),
    st.integers(0, 2),
    st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_verify_quotes_with_mutated_certificate_der(quote, index, edits):
    """Edits inside the DER of one certificate, so `cryptography` loads it and fails late."""
    _verify_or_typed(_with_mutated_certificate(quote, index, edits), now=NOW)


def _mutate_text(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, value in edits:
        buf[position % len(buf)] = value
    return bytes(buf)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@settings(max_examples=600, **FAST)
@given(
    st.sampled_from(["tcb", "identity"]),
    st.integers(0, 2),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(32, 126)), min_size=1, max_size=3),
)
def test_collateral_parsers_on_mutated_responses(kind, index, edits):
    files = COLLATERAL_FILES[kind]
    data = _mutate_text(files[index % len(files)], edits)
    parser = parse_tcb_info if kind == "tcb" else parse_enclave_identity
    try:
        parser(data)
    except MalformedEvidence:
        pass


@settings(max_examples=400, **FAST)
@given(st.sampled_from(["tcbInfo", "enclaveIdentity", "qeIdentity"]), json_values, json_values)
def test_collateral_parsers_on_arbitrary_json(key, inner, signature):
    data = json.dumps({key: inner, "signature": signature}).encode()
    for parser in (parse_tcb_info, parse_enclave_identity):
        try:
            parser(data)
        except MalformedEvidence:
            pass


COLLATERAL_RAW = [
    _read(f"tdx/collateral/{name}")
    for name in ("pckcrl", "rootcrl.der", "tcbInfoIssuerChain.pem", "sample_qeIdentity_response")
]


@settings(max_examples=600, **FAST)
@given(
    st.integers(0, len(COLLATERAL_RAW) - 1),
    st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_collateral_loader_on_mutated_files(tmp_path_factory, index, edits):
    """Damaged CRLs, chains and responses are an InputError naming the file, nothing else."""
    data = _mutate_text(COLLATERAL_RAW[index] or b"\0", edits)
    folder = tmp_path_factory.mktemp("collateral")
    (folder / "item").write_bytes(data)
    try:
        load_collateral_dir(folder)
    except InputError as err:
        assert str(folder / "item") in str(err) or "found in the collateral folder" in str(err)


@settings(max_examples=500, **FAST)
@given(st.binary(max_size=600))
def test_pck_extension_parser_on_arbitrary_bytes(der):
    try:
        intel_extensions._parse(der)
    except EvidenceRejected as err:
        assert err.check == "pck-extensions"
