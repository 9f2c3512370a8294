"""Verifying DCAP quotes without collateral: the vectors give what SOURCES.md states, and
each check refuses with its own reason."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from dcap_build import QUOTES, qe_block_at, replace_bytes, signature_data_at, with_certification

from workbench.attestation.formats import dcap_offsets as off
from workbench.attestation.formats.dcap import parse_quote
from workbench.attestation.verify import dcap, pinned
from workbench.attestation.verify.intel_chain import load_pck_chain
from workbench.attestation.verify.result import EvidenceRejected

# Inside the validity of every PCK chain in the vectors (the v5 one starts 2026-01-27).
NOW = datetime(2026, 6, 1, tzinfo=UTC)
QUOTE_CHECKS = [
    "quote-header",
    "pck-chain",
    "qe-report-signature",
    "qe-report-binding",
    "quote-signature",
]


@pytest.fixture(scope="module")
def quotes(vectors):
    return {name: (vectors / path).read_bytes() for name, path in QUOTES.items()}


def _rejected(data: bytes, now: datetime = NOW) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as info:
        dcap.verify_quote(data, now=now)
    return info.value


@pytest.mark.parametrize("name", sorted(QUOTES))
def test_every_quote_vector_verifies(quotes, name):
    data = quotes[name]
    result = dcap.verify_quote(data, now=NOW)
    quote = parse_quote(data)
    assert result.tee == quote.tee
    assert [c.name for c in result.checks] == QUOTE_CHECKS
    assert all(c.ok for c in result.checks)
    assert result.report_data == quote.body.report_data
    assert result.claims["report_data"] == quote.body.report_data.hex()
    assert result.claims["quote_version"] == quote.version
    assert result.tcb_status is None  # no collateral, no TCB status
    # The chain ends at the pinned root, whose fingerprint SOURCES.md gives.
    assert result.chain[-1].sha256 == pinned.INTEL_SGX_ROOT_CA


@pytest.mark.parametrize("name", ["tdx-v4", "tdx-v5", "trustee-tdx-v4", "trustee-tdx-v5"])
def test_tdx_claims_are_the_td_report(quotes, name):
    body = parse_quote(quotes[name]).body
    claims = dcap.verify_quote(quotes[name], now=NOW).claims
    for claim, field in {
        "mrtd": "mr_td",
        "rtmr0": "rtmr0",
        "rtmr1": "rtmr1",
        "rtmr2": "rtmr2",
        "rtmr3": "rtmr3",
        "mrconfigid": "mr_config_id",
        "mrowner": "mr_owner",
        "mrownerconfig": "mr_owner_config",
        "tee_tcb_svn": "tee_tcb_svn",
        "td_attributes": "td_attributes",
        "xfam": "xfam",
    }.items():
        assert claims[claim] == getattr(body, field).hex(), claim
    assert claims["debug"] is bool(body.td_attributes[0] & 1)
    assert re.fullmatch(r"[0-9a-f]{12}", claims["fmspc"])


def test_sgx_claims_agree_with_trustees_token(quotes, vectors):
    """Trustee's example EAR token was made from this very quote: an independent parse."""
    token = json.loads((vectors / "ear" / "trustee-example.token.json").read_text())
    sgx = token["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["sgx"]
    claims = dcap.verify_quote(quotes["sgx-v3"], now=NOW).claims
    assert claims["mrenclave"] == sgx["body"]["mr_enclave"]
    assert claims["mrsigner"] == sgx["body"]["mr_signer"]
    assert claims["cpusvn"] == sgx["body"]["cpu_svn"]
    assert claims["report_data"] == sgx["body"]["report_data"]
    body = sgx["body"]
    assert claims["isvprodid"] == int.from_bytes(bytes.fromhex(body["isv_prod_id"]), "little")
    assert claims["isvsvn"] == int.from_bytes(bytes.fromhex(body["isv_svn"]), "little")
    flags = bytes.fromhex(sgx["body"]["attributes.flags"])
    assert claims["debug"] is bool(flags[0] & 0x02)
    assert claims["attributes"] == sgx["body"]["attributes.flags"] + sgx["body"]["attributes.xfrm"]
    assert claims["signer"] == "pck"


def test_trailing_bytes_are_reported(quotes):
    result = dcap.verify_quote(quotes["tdx-v4"], now=NOW)
    trailing = parse_quote(quotes["tdx-v4"]).trailing_size
    assert result.extra["trailing_bytes"] == trailing
    assert f"{trailing} bytes after the quote ignored" in result.checks[0].detail


# --- root pinning ------------------------------------------------------------------------


def test_qvl_test_root_tdx_quote_is_refused_by_root_pinning(vectors):
    data = (vectors / "negative" / "intel-qvl-test-root-tdx-quote.dat").read_bytes()
    err = _rejected(data)
    assert err.check == "pck-chain"
    assert "root pinning refuses it" in err.reason
    assert "Intel SGX Root CA" in err.reason
    assert pinned.INTEL_SGX_ROOT_CA in err.reason
    # Its root carries the same name as Intel's: only the bytes tell them apart.
    chain = load_pck_chain(parse_quote(data).certification.data)
    assert chain.certs[-1].subject == pinned.intel_sgx_root().subject
    assert chain.ders[-1] != pinned.intel_sgx_root().public_bytes(Encoding.DER)


def test_qvl_test_root_sgx_quote_has_no_chain_to_pin(vectors):
    data = (vectors / "negative" / "intel-qvl-test-root-sgx-quote.dat").read_bytes()
    err = _rejected(data)
    assert err.check == "pck-chain"
    assert "type 1 (PPID in clear text)" in err.reason
    assert "cannot be tied to the pinned Intel SGX Root CA" in err.reason


def test_rejection_lists_the_checks_run(vectors):
    data = (vectors / "negative" / "intel-qvl-test-root-tdx-quote.dat").read_bytes()
    err = _rejected(data)
    assert [(c.name, c.ok) for c in err.checks] == [("quote-header", True), ("pck-chain", False)]


# --- time ----------------------------------------------------------------------------------


def test_pck_chain_expired(quotes):
    err = _rejected(quotes["tdx-v4"], datetime(2031, 1, 1, tzinfo=UTC))
    assert err.check == "pck-chain"
    assert "'Intel SGX PCK Certificate' expired on 2029-09-20" in err.reason


def test_pck_chain_not_yet_valid(quotes):
    err = _rejected(quotes["tdx-v5"], datetime(2025, 1, 1, tzinfo=UTC))
    assert err.check == "pck-chain"
    assert "is not valid before 2026-01-27" in err.reason


def test_naive_time_is_taken_as_utc(quotes):
    result = dcap.verify_quote(quotes["tdx-v4"], now=datetime(2026, 6, 1))
    assert result.tee == "tdx"


# --- each quote check's refusal ------------------------------------------------------------


def test_foreign_qe_vendor(quotes):
    data = replace_bytes(quotes["tdx-v4"], off.HEADER_QE_VENDOR_ID, b"\x11" * 16)
    err = _rejected(data)
    assert err.check == "quote-header"
    assert "QE vendor ID 1111" in err.reason


def test_chain_of_two_certificates(quotes):
    chain = load_pck_chain(parse_quote(quotes["tdx-v4"]).certification.data)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain.certs[1:])
    err = _rejected(with_certification(quotes["tdx-v4"], pem))
    assert err.check == "pck-chain"
    assert "has 2 certificates, expected 3" in err.reason


def test_chain_that_does_not_parse(quotes):
    err = _rejected(with_certification(quotes["tdx-v4"], b"\x30\x03\x02\x01"))
    assert err.check == "pck-chain"
    assert "does not parse" in err.reason


def test_leaf_that_is_not_a_pck_certificate(quotes):
    chain = load_pck_chain(parse_quote(quotes["tdx-v4"]).certification.data)
    ca, root = chain.certs[1], chain.certs[2]
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (ca, root, root))
    err = _rejected(with_certification(quotes["tdx-v4"], pem))
    assert err.check == "pck-chain"
    assert "has 'Intel SGX PCK Platform CA' where 'Intel SGX PCK Certificate' belongs" in err.reason


def test_intermediate_that_is_not_a_pck_ca(quotes, vectors):
    chain = load_pck_chain(parse_quote(quotes["tdx-v4"]).certification.data)
    signing = (vectors / "tdx" / "collateral" / "tcbInfoIssuerChain.pem").read_bytes()
    tcb_signing = signing.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    pem = chain.certs[0].public_bytes(Encoding.PEM) + tcb_signing
    pem += chain.certs[2].public_bytes(Encoding.PEM)
    err = _rejected(with_certification(quotes["tdx-v4"], pem))
    assert err.check == "pck-chain"
    assert "has 'Intel SGX TCB Signing' where" in err.reason


def test_leaf_with_a_broken_signature(quotes):
    chain = load_pck_chain(parse_quote(quotes["tdx-v4"]).certification.data)
    leaf = bytearray(chain.ders[0])
    leaf[-5] ^= 0x01  # inside the signature value: still a certificate, no longer Intel's
    pem = b"".join(
        [
            b"-----BEGIN CERTIFICATE-----\n",
            base64.encodebytes(bytes(leaf)),
            b"-----END CERTIFICATE-----\n",
            *(c.public_bytes(Encoding.PEM) for c in chain.certs[1:]),
        ]
    )
    err = _rejected(with_certification(quotes["tdx-v4"], pem))
    assert err.check == "pck-chain"
    assert "is broken: certificate 'Intel SGX PCK Certificate' is not signed by" in err.reason


def test_qe_report_changed(quotes):
    data = quotes["sgx-v3"]
    at = qe_block_at(data) + off.ENCLAVE_REPORT_ISV_SVN
    err = _rejected(replace_bytes(data, at, bytes([data[at] ^ 1])))
    assert err.check == "qe-report-signature"
    assert "does not verify with the PCK certificate key" in err.reason


def test_qe_auth_data_changed(quotes):
    data = quotes["tdx-v4"]
    at = qe_block_at(data) + off.QE_CERT_AUTH_DATA
    err = _rejected(replace_bytes(data, at, bytes([data[at] ^ 1])))
    assert err.check == "qe-report-binding"
    assert "SHA-256(attestation key || QE auth data)" in err.reason


def test_attestation_key_swapped(quotes):
    data = quotes["tdx-v5"]
    at = signature_data_at(data) + off.SIG_ATTESTATION_KEY
    other = parse_quote(quotes["trustee-tdx-v5"]).attestation_key
    err = _rejected(replace_bytes(data, at, other))
    assert err.check == "qe-report-binding"
    assert "not the one the QE certified" in err.reason


def test_quote_signature_changed(quotes):
    data = quotes["tdx-v4"]
    at = signature_data_at(data) + off.SIG_QUOTE_SIGNATURE
    err = _rejected(replace_bytes(data, at, bytes([data[at] ^ 1])))
    assert err.check == "quote-signature"
    assert "does not verify with the attestation key" in err.reason


def test_body_changed(quotes):
    data = quotes["sgx-v3"]
    at = off.HEADER_SIZE + off.ENCLAVE_REPORT_MR_ENCLAVE
    err = _rejected(replace_bytes(data, at, bytes([data[at] ^ 1])))
    assert err.check == "quote-signature"


def test_qe_report_data_tail_must_be_zero(quotes):
    quote = parse_quote(quotes["tdx-v4"])
    qe = quote.qe_report
    tail = qe.report_data[:32] + b"\x01" + qe.report_data[33:]
    state = dcap._State(
        quote=dataclasses.replace(quote, qe_report=dataclasses.replace(qe, report_data=tail)),
        now=NOW,
    )
    with pytest.raises(EvidenceRejected, match=r"bytes 32\.\.63 are not zero"):
        dcap._check_qe_binding(state)


def test_attestation_key_off_the_curve(quotes):
    """Unreachable with a real QE (binding comes first), so the step is tested alone."""
    quote = parse_quote(quotes["tdx-v4"])
    state = dcap._State(quote=dataclasses.replace(quote, attestation_key=b"\x01" * 64), now=NOW)
    with pytest.raises(EvidenceRejected, match="not a point on P-256"):
        dcap._check_quote_signature(state)


def test_binding_is_sha256_of_key_and_auth_data(quotes):
    quote = parse_quote(quotes["tdx-v4"])
    digest = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    assert quote.qe_report.report_data[:32] == digest


def _cert_edited(quotes, index: int, find: bytes, offset: int, value: int) -> bytes:
    chain = load_pck_chain(parse_quote(quotes["tdx-v4"]).certification.data)
    ders = [bytearray(d) for d in chain.ders]
    ders[index][ders[index].index(find) + offset] = value
    pem = b"".join(
        b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE-----\n"
        for der in ders
    )
    return with_certification(quotes["tdx-v4"], pem)


@pytest.mark.parametrize(
    ("index", "cn", "reason"),
    [
        (0, b"\x0c\x19Intel SGX PCK Certificate", "PCK chain does not parse"),
        (1, b"\x0c\x19Intel SGX PCK Platform CA", "holds a certificate that does not decode"),
    ],
)
def test_certificate_whose_name_does_not_decode(quotes, index, cn, reason):
    """`cryptography` decodes names lazily: found by the fuzz tests, refused as a check."""
    err = _rejected(_cert_edited(quotes, index, cn, 0, 0x00))
    assert err.check == "pck-chain"
    assert reason in err.reason


def test_leaf_with_an_invalid_x509_version(quotes):
    data = _cert_edited(quotes, 0, b"\xa0\x03\x02\x01\x02", 4, 0x13)
    err = _rejected(data)
    assert err.check == "pck-chain"
    assert "does not parse" in err.reason and "not a valid X509 version" in err.reason
