"""Parsing Azure vTPM evidence (formats only, no crypto): HCL reports with their SEV-SNP or TD
report and runtime data, TPM2 quotes in kinvolk's bincode and Trustee's JSON shapes, and one
clear error naming the field for each malformed input."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from azure_vectors import (
    CHALLENGE,
    V2_NONCE,
    b64u,
    evidence,
    hcl_of,
    replace_variable_data,
    variable_data,
)

from workbench.attestation.formats import azure_hcl_offsets as off
from workbench.attestation.formats.azure_evidence import (
    azure_tee,
    parse_azure_document,
    parse_azure_evidence,
)
from workbench.attestation.formats.azure_hcl import parse_hcl_report, parse_runtime_data
from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.tpm_quote import (
    parse_attest,
    parse_bincode_quote,
    quote_from_json,
)

KINVOLK = "azure/kinvolk"
TRUSTEE = "azure/trustee-snp"


def test_offsets_table_is_contiguous_and_named_once() -> None:
    assert off.REQUEST_DATA == off.HEADER_SIZE + off.HW_REPORT_SLOT == 0x4C0
    assert off.VARIABLE_DATA == 0x4D4
    names = [name for name, _, _ in off.HEADER_FIELDS]
    assert len(names) == len(set(names))
    td_ends = [at + size for _, at, size in off.TD_REPORT_FIELDS]
    assert max(td_ends) <= off.TD_REPORT_SIZE


# --- HCL reports -----------------------------------------------------------------------


def test_kinvolk_snp_hcl_report(vectors: Path) -> None:
    hcl = parse_hcl_report((vectors / KINVOLK / "hcl-report-snp.bin").read_bytes())
    assert (hcl.version, hcl.report_type, hcl.hash_type) == (1, "snp", "sha256")
    assert len(hcl.variable_data) == 583 and hcl.report_size == 1819
    assert hcl.snp is not None and hcl.td is None and hcl.snp.version == 2
    # report_data[0..32] == SHA-256(variable data), as SOURCES.md says (checked by verify;
    # here only that the parser hands out the right bytes).
    assert hcl.report_data[:32] == hashlib.sha256(hcl.variable_data).digest()
    assert hcl.runtime.ak_pub.kid == "HCLAkPub"
    assert hcl.runtime.flags == {"secure_boot": True, "tpm_enabled": True,
                                 "console_enabled": True, "tpm_persisted": None}
    assert hcl.runtime.values["vm_unique_id"] == "BAEFD3E1-184B-4C4C-AB88-0BDAD260505F"


def test_kinvolk_tdx_hcl_report_is_a_td_report(vectors: Path) -> None:
    hcl = parse_hcl_report((vectors / KINVOLK / "hcl-report-tdx.bin").read_bytes())
    assert (hcl.version, hcl.report_type) == (2, "tdx")
    assert hcl.td is not None and hcl.snp is None
    assert len(hcl.td.raw) == off.TD_REPORT_SIZE and len(hcl.td.mr_td) == 48
    assert hcl.report_data[:32] == hashlib.sha256(hcl.variable_data).digest()
    assert hcl.runtime.flags["secure_boot"] is False
    assert hcl.runtime.flags["tpm_persisted"] is False
    assert set(hcl.runtime.keys) == {"HCLAkPub", "HCLEkPub"}


def test_trustee_hcl_report(vectors: Path) -> None:
    hcl = parse_hcl_report((vectors / TRUSTEE / "hcl-report.bin").read_bytes())
    assert hcl.report_type == "snp" and len(hcl.variable_data) == 1110
    assert hcl.snp is not None and hcl.snp.version == 2
    assert hcl.runtime.user_data == "00" * 64


def test_kinvolk_var_data_is_runtime_data(vectors: Path) -> None:
    runtime = parse_runtime_data((vectors / KINVOLK / "var-data.bin").read_bytes())
    assert runtime.ak_pub.e == "AQAB" and runtime.ak_pub.key_ops == ("sign",)
    assert runtime.flags["secure_boot"] is True
    assert runtime.values["vm_unique_id"] == "3404EF27-32A2-4A07-A4C7-1A1171624C5D"
    assert runtime.user_data == "00" * 64


@pytest.fixture
def trustee_hcl(vectors: Path) -> bytes:
    return (vectors / TRUSTEE / "hcl-report.bin").read_bytes()


def _patch(data: bytes, offset: int, value: int) -> bytes:
    patched = bytearray(data)
    struct.pack_into("<I", patched, offset, value)
    return bytes(patched)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda h: b"XCLA" + h[4:], "HCL report signature: 58434c41 is not 'HCLA'"),
    (lambda h: _patch(h, off.VERSION, 9), "HCL report version: 9 is not supported"),
    (lambda h: _patch(h, off.REPORT_TYPE, 1), "HCL report report_type: 1 is neither SEV-SNP"),
    (lambda h: _patch(h, off.HASH_TYPE, 7), "HCL report hash_type: 7 is not SHA-256"),
    (lambda h: _patch(h, off.DATA_SIZE, 5), "HCL report data_size: 5 is not the request data"),
    (lambda h: _patch(h, off.REPORT_SIZE, 5), "HCL report report_size: 5 is not where"),
    (lambda h: _patch(h, off.VARIABLE_DATA_SIZE, 99999), "HCL report data_size"),
    (lambda h: h[:-1] + b"\x01", "HCL report padding: bytes after the report"),
    (lambda h: h[:0x400], "HCL report size: 1024 bytes is too short"),
    (lambda h: _patch(h, off.HW_REPORT, 1), "HCL report SEV-SNP report: SEV-SNP report "
                                            "version 1 is not supported"),
])
def test_malformed_hcl_report_names_the_field(trustee_hcl: bytes, edit, message: str) -> None:
    with pytest.raises(MalformedEvidence, match="^" + message.replace("(", r"\(")):
        parse_hcl_report(edit(trustee_hcl))


@pytest.mark.parametrize(("document", "message"), [
    (b"[1]", "HCL report variable data: is not a JSON object"),
    (b"{", "HCL report variable data: is not a UTF-8 JSON document"),
    (b'{"keys": {}}', "HCL report runtime data keys: 'keys' is missing or not a list"),
    (b'{"keys": []}', "HCL report runtime data keys: no 'HCLAkPub' key"),
    (b'{"keys": [{"kid": "HCLAkPub", "kty": "EC"}]}', "HCL report HCLAkPub: kty is 'EC'"),
    (b'{"keys": [{"kid": "HCLAkPub", "kty": "RSA", "e": "AQAB"}]}',
     "HCL report HCLAkPub: 'n' is missing"),
    (b'{"keys": [{"kid": "a"}, {"kid": "a"}]}', "HCL report runtime data keys: kid 'a' appears"),
    (b'{"keys": [], "keys": []}', "HCL report variable data: is not a UTF-8 JSON document "
                                  r"\(duplicate key 'keys'\)"),
])
def test_malformed_runtime_data_names_the_field(document: bytes, message: str) -> None:
    with pytest.raises(MalformedEvidence, match="^" + message):
        parse_runtime_data(document)


def test_vm_configuration_flags_must_be_booleans(trustee_hcl: bytes) -> None:
    data = json.loads(variable_data(trustee_hcl))
    data["vm-configuration"]["secure-boot"] = "yes"
    edited = replace_variable_data(trustee_hcl, json.dumps(data).encode())
    with pytest.raises(MalformedEvidence, match="vm-configuration: 'secure-boot' is 'yes', "
                                                "not a boolean"):
        parse_hcl_report(edited)


# --- TPM quotes ------------------------------------------------------------------------


def test_kinvolk_bincode_quote(vectors: Path) -> None:
    quote = parse_bincode_quote((vectors / KINVOLK / "quote.bin").read_bytes())
    assert quote.attest.extra_data == CHALLENGE
    assert len(quote.signature) == 256 and len(quote.pcrs) == 24
    (bank,) = quote.attest.pcr_selection
    assert bank.hash_name == "sha256" and bank.pcrs == tuple(range(24))
    assert sorted(quote.pcr_values) == list(range(24))


def test_trustee_quote_files(vectors: Path) -> None:
    bincode = parse_bincode_quote((vectors / TRUSTEE / "quote.bin").read_bytes())
    assert bincode.attest.extra_data == CHALLENGE
    as_json = quote_from_json(json.loads((vectors / TRUSTEE / "tpm-quote-v1.json").read_text()))
    assert as_json.attest.extra_data == CHALLENGE
    message = parse_attest((vectors / TRUSTEE / "tpm-quote.msg").read_bytes())
    assert message.extra_data == CHALLENGE and len(message.pcr_digest) == 32


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: b"\x00" + m[1:], "TPM quote magic: 0x00544347 is not TPM_GENERATED_VALUE"),
    (lambda m: m[:4] + b"\x80\x17" + m[6:], "TPM quote type: 0x8017 is not TPM_ST_ATTEST_QUOTE"),
    (lambda m: m[:-1], "TPM quote pcrDigest: needs 32 bytes"),
    (lambda m: m + b"\x00", "TPM quote message: 1 trailing bytes after pcrDigest"),
    (lambda m: m[:3], "TPM quote message: 3 bytes is too short"),
])
def test_malformed_quote_message_names_the_field(vectors: Path, edit, message: str) -> None:
    good = (vectors / TRUSTEE / "tpm-quote.msg").read_bytes()
    with pytest.raises(MalformedEvidence, match="^" + message):
        parse_attest(edit(good))


def test_malformed_bincode_and_json_quotes(vectors: Path) -> None:
    raw = (vectors / KINVOLK / "quote.bin").read_bytes()
    with pytest.raises(MalformedEvidence, match=r"^TPM quote pcrs: 24 values of 32 bytes do not"):
        parse_bincode_quote(raw[:-1])
    with pytest.raises(MalformedEvidence, match=r"^TPM quote signature: 256 bytes run past"):
        parse_bincode_quote(raw[:200])
    document = json.loads((vectors / TRUSTEE / "tpm-quote-v1.json").read_text())
    with pytest.raises(MalformedEvidence, match=r"^TPM quote pcrs: 23 PCR values given for 24"):
        quote_from_json({**document, "pcrs": document["pcrs"][:-1]})
    with pytest.raises(MalformedEvidence, match=r"^TPM quote pcrs: PCR 0 value is 31 bytes"):
        quote_from_json({**document, "pcrs": [document["pcrs"][0][:-2], *document["pcrs"][1:]]})
    with pytest.raises(MalformedEvidence, match=r"^TPM quote signature: is not a hex string"):
        quote_from_json({**document, "signature": "zz"})
    with pytest.raises(MalformedEvidence, match=r"^TPM quote tpm_quote: lacks pcrs"):
        quote_from_json({"signature": "00", "message": "00"})
    with pytest.raises(MalformedEvidence, match=r"^TPM quote tpm_quote: unknown member"):
        quote_from_json({**document, "extra": 1})


# --- Trustee's evidence shapes ---------------------------------------------------------


@pytest.mark.parametrize(("version", "nonce"), [("v0", CHALLENGE), ("v1", CHALLENGE),
                                                ("v2", V2_NONCE)])
def test_trustee_evidence_shapes(vectors: Path, version: str, nonce: bytes) -> None:
    raw = (vectors / TRUSTEE / f"evidence-{version}.json").read_bytes()
    assert detect_tee(raw) == azure_tee(raw) == "az-snp-vtpm"
    parsed = parse_azure_evidence(raw)
    assert parsed.tee == "az-snp-vtpm" and parsed.shape == version
    assert parsed.quote.attest.extra_data == nonce
    assert parsed.vcek is not None and parsed.td_quote is None
    assert parsed.hcl.report_type == "snp"


def test_v2_user_data_carries_the_nonce(vectors: Path) -> None:
    parsed = parse_azure_document(evidence(vectors, "v2"))
    assert parsed.hcl.runtime.user_data is not None
    assert bytes.fromhex(parsed.hcl.runtime.user_data).startswith(V2_NONCE)


def test_bare_hcl_report_is_not_evidence(vectors: Path) -> None:
    raw = (vectors / TRUSTEE / "hcl-report.bin").read_bytes()
    assert detect_tee(raw) == "az-snp-vtpm"
    assert detect_tee((vectors / KINVOLK / "hcl-report-tdx.bin").read_bytes()) == "az-tdx-vtpm"
    with pytest.raises(MalformedEvidence, match="bare HCL report: it is written once per boot"):
        parse_azure_evidence(raw)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: {k: v for k, v in d.items() if k != "vcek"}, "Azure evidence shape: lacks vcek"),
    (lambda d: {**d, "extra": 1}, "Azure evidence shape: unknown member"),
    (lambda d: {**d, "version": 3}, "Azure evidence version: 3 is not one of 1, 2"),
    (lambda d: {**d, "hcl_report": "!!"}, "Azure evidence hcl_report: is not a base64url"),
    (lambda d: {"a": 1}, "Azure evidence shape: members a are not Trustee's"),
    (lambda d: {**d, "td_quote": b64u(b"x")}, "Azure evidence shape: unknown member"),
])
def test_malformed_envelope_names_the_member(vectors: Path, edit, message: str) -> None:
    with pytest.raises(MalformedEvidence, match="^" + message):
        parse_azure_document(edit(evidence(vectors, "v1")))


def test_tdx_envelope_with_an_snp_report_is_refused(vectors: Path) -> None:
    document = evidence(vectors, "v1")
    tdx_shaped = {"tpm_quote": document["tpm_quote"], "hcl_report": document["hcl_report"],
                  "td_quote": b64u(b"quote")}
    with pytest.raises(MalformedEvidence, match="holds a SNP report but the envelope is "
                                                "az-tdx-vtpm's"):
        parse_azure_document(tdx_shaped)
    assert hcl_of(document)[:4] == b"HCLA"


def test_simulated_envelope_is_not_taken_for_azure() -> None:
    assert azure_tee(b'{"type": "workbench-simulated-evidence"}') is None
    assert detect_tee(b'{"type": "workbench-simulated-evidence"}') == "simulated"
