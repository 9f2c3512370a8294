"""Parsing DCAP quotes: every real vector, and each structural refusal with its reason."""

from __future__ import annotations

import struct

import pytest
from dcap_build import (
    QUOTES,
    body_end,
    qe_block_at,
    set_u16,
    set_u32,
    signature_data_at,
)

from workbench.attestation.formats import dcap_offsets as off
from workbench.attestation.formats.dcap import (
    MAX_QUOTE_SIZE,
    EnclaveReport,
    TdReport,
    parse_quote,
)
from workbench.attestation.formats.errors import MalformedEvidence


@pytest.fixture(scope="module")
def quotes(vectors):
    return {name: (vectors / path).read_bytes() for name, path in QUOTES.items()}


@pytest.mark.parametrize(
    ("name", "version", "tee", "body_cls"),
    [
        ("sgx-v3", 3, "sgx", EnclaveReport),
        ("tdx-v4", 4, "tdx", TdReport),
        ("tdx-v5", 5, "tdx", TdReport),
        ("trustee-tdx-v4", 4, "tdx", TdReport),
        ("trustee-tdx-v5", 5, "tdx", TdReport),
    ],
)
def test_real_quotes_parse(quotes, name, version, tee, body_cls):
    data = quotes[name]
    quote = parse_quote(data)
    assert (quote.version, quote.tee) == (version, tee)
    assert isinstance(quote.body, body_cls)
    assert quote.certification.type == 5
    assert b"-----BEGIN CERTIFICATE-----" in quote.certification.data
    assert quote.outer_certification_type == (None if version == 3 else 6)
    # The signed region is exactly header + body, and the body sits right after it.
    assert quote.signed_data == data[: len(quote.signed_data)]
    assert quote.body.raw == data[len(quote.signed_data) - len(quote.body.raw) : body_end(data)]
    assert quote.size + quote.trailing_size == len(data)


def test_header_fields_come_from_their_offsets(quotes):
    data = quotes["sgx-v3"]
    header = parse_quote(data).header
    for name, at, size in off.HEADER_FIELDS:
        raw = data[at : at + size]
        expected = int.from_bytes(raw, "little") if size in (2, 4) else raw
        assert getattr(header, name) == expected, name


def test_td_report_fields_come_from_their_offsets(quotes):
    data = quotes["tdx-v5"]
    quote = parse_quote(data)
    body = data[off.V5_BODY : off.V5_BODY + off.TD_REPORT15_SIZE]
    for name, at, size in off.TD_REPORT10_FIELDS + off.TD_REPORT15_EXTRA_FIELDS:
        assert getattr(quote.body, name) == body[at : at + size], name


def test_enclave_report_fields_come_from_their_offsets(quotes):
    data = quotes["sgx-v3"]
    body = parse_quote(data).body
    raw = data[off.HEADER_SIZE : off.HEADER_SIZE + off.ENCLAVE_REPORT_SIZE]
    for name, at, size in off.ENCLAVE_REPORT_FIELDS:
        value = raw[at : at + size]
        expected = int.from_bytes(value, "little") if size == 2 else value
        assert getattr(body, name) == expected, name


def test_v5_body_type_3_carries_tdx_15_fields(quotes):
    for name in ("tdx-v5", "trustee-tdx-v5"):
        quote = parse_quote(quotes[name])
        assert quote.body_type == 3
        assert isinstance(quote.body, TdReport)
        assert quote.body.tee_tcb_svn2 is not None and len(quote.body.tee_tcb_svn2) == 16
        assert quote.body.mr_servicetd is not None and len(quote.body.mr_servicetd) == 48
    v4 = parse_quote(quotes["tdx-v4"])
    assert isinstance(v4.body, TdReport) and v4.body.tee_tcb_svn2 is None


def test_trailing_bytes_are_counted_not_read(quotes):
    data = quotes["tdx-v4"]  # go-tdx-guest appends a line of text to its sample quote
    quote = parse_quote(data)
    assert quote.trailing_size == len(data) - quote.size > 0
    assert parse_quote(data[: quote.size]).trailing_size == 0
    assert parse_quote(data + b"\0" * 1000).trailing_size == quote.trailing_size + 1000


def test_debug_flags(quotes):
    sgx = parse_quote(quotes["sgx-v3"]).body
    assert sgx.debug == bool(sgx.attributes[0] & 0x02)
    tdx = parse_quote(quotes["trustee-tdx-v4"]).body
    assert tdx.debug == bool(tdx.td_attributes[0] & 0x01)


@pytest.mark.parametrize("name", ["sgx-v3", "tdx-v4", "tdx-v5"])
def test_every_truncation_is_malformed(quotes, name):
    data = parse_quote(quotes[name])
    whole = quotes[name][: data.size]
    for length in range(len(whole)):
        with pytest.raises(MalformedEvidence):
            parse_quote(whole[:length])


def test_empty_input():
    with pytest.raises(MalformedEvidence, match="empty"):
        parse_quote(b"")


def test_oversized_input(quotes):
    data = quotes["tdx-v4"] + b"\0" * MAX_QUOTE_SIZE
    with pytest.raises(MalformedEvidence, match="more than the"):
        parse_quote(data)


def test_not_bytes():
    with pytest.raises(MalformedEvidence, match="must be bytes"):
        parse_quote("a quote")  # type: ignore[arg-type]


def test_wrong_version(quotes):
    data = set_u16(quotes["tdx-v4"], off.HEADER_VERSION, 6)
    with pytest.raises(MalformedEvidence, match="version 6 is not a DCAP quote"):
        parse_quote(data)


def test_p384_attestation_key_type(quotes):
    data = set_u16(quotes["tdx-v4"], off.HEADER_ATTESTATION_KEY_TYPE, 3)
    with pytest.raises(MalformedEvidence, match=r"key type 3 \(ECDSA-384-with-P-384\)"):
        parse_quote(data)


def test_unknown_tee_type(quotes):
    data = set_u32(quotes["tdx-v4"], off.HEADER_TEE_TYPE, 0x42)
    with pytest.raises(MalformedEvidence, match="TEE type 0x42 is not valid"):
        parse_quote(data)


def test_v3_cannot_be_tdx(quotes):
    data = set_u32(quotes["sgx-v3"], off.HEADER_TEE_TYPE, 0x81)
    with pytest.raises(MalformedEvidence, match="not valid in a version 3 quote"):
        parse_quote(data)


def test_v5_unknown_body_type(quotes):
    data = set_u16(quotes["tdx-v5"], off.V5_BODY_TYPE, 9)
    with pytest.raises(MalformedEvidence, match="body type 9 is unknown"):
        parse_quote(data)


def test_v5_body_type_of_the_other_tee(quotes):
    data = set_u16(quotes["tdx-v5"], off.V5_BODY_TYPE, 1)
    with pytest.raises(MalformedEvidence, match="body type 1 does not belong to TEE type 0x81"):
        parse_quote(data)


def test_v5_body_size_disagrees_with_type(quotes):
    data = set_u32(quotes["tdx-v5"], off.V5_BODY_SIZE, off.TD_REPORT10_SIZE)
    with pytest.raises(MalformedEvidence, match="declares 584 bytes, expected 648"):
        parse_quote(data)


def test_signature_data_longer_than_input(quotes):
    data = quotes["sgx-v3"]
    at = body_end(data)
    size = struct.unpack_from("<I", data, at)[0]
    with pytest.raises(MalformedEvidence, match="signature data declares"):
        parse_quote(set_u32(data, at, size + 1))


def test_signature_data_too_short(quotes):
    data = quotes["sgx-v3"]
    with pytest.raises(MalformedEvidence, match="too short"):
        parse_quote(set_u32(data, body_end(data), 100))


def test_signature_data_shorter_than_its_parts(quotes):
    data = quotes["tdx-v4"]
    at = body_end(data)
    size = struct.unpack_from("<I", data, at)[0]
    # The certification data inside now claims more than the signature data holds.
    with pytest.raises(MalformedEvidence, match="certification data declares"):
        parse_quote(set_u32(data, at, size - 1))


def test_outer_certification_type_must_be_6(quotes):
    data = quotes["tdx-v4"]
    at = signature_data_at(data) + off.SIG_AFTER_KEY
    with pytest.raises(MalformedEvidence, match="type 5, expected 6"):
        parse_quote(set_u16(data, at + off.CERT_DATA_TYPE, 5))


def test_inner_certification_type_6_is_a_nesting_error(quotes):
    data = quotes["sgx-v3"]
    quote = parse_quote(data)
    inner = quote.size - len(quote.certification.data) - off.CERT_DATA
    with pytest.raises(MalformedEvidence, match="type 6 is not allowed here"):
        parse_quote(set_u16(data, inner + off.CERT_DATA_TYPE, 6))


def test_qe_auth_data_past_the_end(quotes):
    data = quotes["tdx-v4"]
    at = qe_block_at(data) + off.QE_CERT_AUTH_DATA_SIZE
    with pytest.raises(MalformedEvidence, match="QE auth data declares 65535 bytes"):
        parse_quote(set_u16(data, at, 0xFFFF))


def test_inner_certification_size_disagrees(quotes):
    data = quotes["tdx-v5"]
    quote = parse_quote(data)
    inner = quote.size - len(quote.certification.data) - off.CERT_DATA
    size = len(quote.certification.data)
    with pytest.raises(MalformedEvidence, match="certification data declares"):
        parse_quote(set_u32(data, inner + off.CERT_DATA_SIZE, size - 1))
