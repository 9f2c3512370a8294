"""Verifying Azure vTPM evidence: every vector as SOURCES.md says, and every binding broken
(variable data edited, attestation key swapped, wrong nonce, a PCR value edited, another VM's
quote, report_data not matching) refused naming its check."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure_vectors import (
    CHALLENGE,
    NOW,
    V2_NONCE,
    b64u,
    evidence,
    hcl_of,
    replace_variable_data,
    variable_data,
    with_hcl,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key

from workbench.attestation.formats import snp_offsets
from workbench.attestation.formats.azure_evidence import parse_azure_document
from workbench.attestation.formats.azure_hcl import parse_hcl_report
from workbench.attestation.formats.tpm_quote import make_quote, parse_bincode_quote
from workbench.attestation.verify import pinned, verify_evidence
from workbench.attestation.verify.azure import (
    TD_REPORT_NOT_A_QUOTE,
    hcl_vmpl,
    var_data_binding,
    verify_azure_evidence,
)
from workbench.attestation.verify.certs import check_issued_by, load_pem_bundle
from workbench.attestation.verify.claims import TEE_CLAIMS
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.snp import verify_report
from workbench.attestation.verify.tpm_quote import verify_tpm_quote

SNP_CHECKS = ["endorsement-key", "product", "cert-chain", "report-signature", "signer-matches",
              "tcb-matches", "chip-id"]
AZURE_CHECKS = [*SNP_CHECKS, "hcl-vmpl", "var-data-binding", "attestation-key",
                "tpm-quote-signature", "tpm-nonce", "pcr-digest"]
TDX_TIME = datetime(2025, 3, 1, tzinfo=UTC)


def _refused(document: Any, check: str, **kwargs: Any) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as caught:
        verify_azure_evidence(document, now=NOW, **kwargs)
    assert caught.value.check == check, caught.value
    assert caught.value.checks[-1].name == check and not caught.value.checks[-1].ok
    return caught.value


# --- the vectors, as SOURCES.md says -------------------------------------------------------


@pytest.mark.parametrize(("version", "nonce"), [("v0", CHALLENGE), ("v1", CHALLENGE),
                                                ("v2", V2_NONCE)])
def test_trustee_evidence_verifies(vectors: Path, version: str, nonce: bytes) -> None:
    raw = (vectors / f"azure/trustee-snp/evidence-{version}.json").read_bytes()
    result = verify_azure_evidence(raw, now=NOW, nonce=nonce)
    assert result.tee == "az-snp-vtpm"
    assert [c.name for c in result.checks] == AZURE_CHECKS
    assert all(c.ok for c in result.checks)
    assert result.report_data == nonce
    assert result.claims["tpm_nonce"] == nonce.hex()
    assert result.claims["vm_configuration"] == {"secure_boot": True, "tpm_enabled": True,
                                                 "console_enabled": True}
    assert len(result.claims["pcrs"]) == 24 and result.claims["product"] == "milan"
    assert result.claims["evidence_version"] == int(version[1])
    assert len(result.chain) == 3  # VCEK, ASK, ARK


def test_verify_evidence_detects_and_dispatches_azure(vectors: Path) -> None:
    raw = (vectors / "azure/trustee-snp/evidence-v1.json").read_bytes()
    auto = verify_evidence(raw, now=NOW, nonce=CHALLENGE)
    named = verify_evidence(raw, tee="az-snp-vtpm", now=NOW)
    assert auto.tee == named.tee == "az-snp-vtpm"
    assert auto.claims == named.claims
    with pytest.raises(ValueError, match="a nonce applies to az-snp-vtpm and az-tdx-vtpm "
                                         "evidence, not snp"):
        verify_evidence((vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes(),
                        now=NOW, nonce=b"x")


def test_trustee_hcl_report_verifies_with_its_vcek(vectors: Path) -> None:
    hcl = parse_hcl_report((vectors / "azure/trustee-snp/hcl-report.bin").read_bytes())
    assert hcl.snp is not None
    vcek = (vectors / "azure/trustee-snp/vcek.pem").read_bytes()
    result = verify_report(hcl.snp.raw, now=NOW, certs=[vcek])
    assert [c.name for c in result.checks] == SNP_CHECKS
    assert var_data_binding(hcl).ok


def test_kinvolk_quote_verifies_with_akpub(vectors: Path) -> None:
    quote = parse_bincode_quote((vectors / "azure/kinvolk/quote.bin").read_bytes())
    key = load_pem_public_key((vectors / "azure/kinvolk/akpub.pem").read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    checks = verify_tpm_quote(quote, key, CHALLENGE)
    assert [c.name for c in checks] == ["tpm-quote-signature", "tpm-nonce", "pcr-digest"]
    assert checks[1].detail == "extraData equals the expected nonce (9 bytes)"


def test_kinvolk_quote_reversed_signature_and_other_nonce_refused(vectors: Path) -> None:
    quote = parse_bincode_quote((vectors / "azure/kinvolk/quote.bin").read_bytes())
    key = load_pem_public_key((vectors / "azure/kinvolk/akpub.pem").read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    reversed_sig = dataclasses.replace(quote, signature=quote.signature[::-1])
    with pytest.raises(EvidenceRejected, match="tpm-quote-signature: the TPM quote is not "
                                               "signed by the attestation key"):
        verify_tpm_quote(reversed_sig, key, CHALLENGE)
    with pytest.raises(EvidenceRejected) as caught:
        verify_tpm_quote(quote, key, b"another")
    assert caught.value.check == "tpm-nonce"
    assert caught.value.reason == (
        "the TPM quote's extraData 6368616c6c656e6765 is not the expected nonce "
        "616e6f74686572 (a replayed or another session's quote)")
    assert [c.name for c in caught.value.checks] == ["tpm-quote-signature", "tpm-nonce"]


def test_kinvolk_reports_bind_their_variable_data(vectors: Path) -> None:
    for name in ("hcl-report-snp.bin", "hcl-report-tdx.bin"):
        hcl = parse_hcl_report((vectors / "azure/kinvolk" / name).read_bytes())
        check = var_data_binding(hcl)
        assert check.ok and check.detail.startswith("report_data[0:32] is the SHA256")


# The kinvolk VCEK's serial number is 0, which RFC 5280 disallows; cryptography warns, and
# SOURCES.md names that serial, so the warning is expected here.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_kinvolk_certs_chain_to_the_pinned_milan_roots(vectors: Path) -> None:
    vcek, ask, ark = load_pem_bundle((vectors / "azure/kinvolk/certs.pem").read_bytes())
    assert vcek.serial_number == 0
    assert ask.public_bytes(Encoding.DER) == pinned.amd_signing_key("milan", "vcek").public_bytes(
        Encoding.DER)
    assert ark.public_bytes(Encoding.DER) == pinned.amd_ark("milan").public_bytes(Encoding.DER)
    check_issued_by(vcek, ask, "cert-chain")
    check_issued_by(ask, ark, "cert-chain")


def test_kinvolk_snp_report_is_not_signed_by_the_kinvolk_vcek(vectors: Path) -> None:
    # SOURCES.md: certs.pem is another chip's chain; the report's own VCEK is not included.
    hcl = parse_hcl_report((vectors / "azure/kinvolk/hcl-report-snp.bin").read_bytes())
    assert hcl.snp is not None
    with pytest.raises(EvidenceRejected) as caught:
        verify_report(hcl.snp.raw, now=NOW,
                      certs=[(vectors / "azure/kinvolk/certs.pem").read_bytes()])
    assert caught.value.check in ("report-signature", "tcb-matches", "chip-id")


def test_kinvolk_tdx_td_report_is_refused_as_not_hardware_rooted(vectors: Path) -> None:
    hcl = parse_hcl_report((vectors / "azure/kinvolk/hcl-report-tdx.bin").read_bytes())
    quote = parse_bincode_quote((vectors / "azure/kinvolk/quote.bin").read_bytes())
    document = parse_azure_document(evidence(vectors, "v1"))
    tdx = dataclasses.replace(document, tee="az-tdx-vtpm", shape="tdx", hcl=hcl, quote=quote,
                              vcek=None, td_quote=None)
    refused = _refused(tdx, "td-quote")
    assert refused.reason == TD_REPORT_NOT_A_QUOTE
    assert "a TD report is MACed for the local CPU only" in refused.reason


def test_td_quote_of_another_td_is_refused(vectors: Path) -> None:
    # A genuine TD quote (go-tdx-guest's) verifies through DCAP, but it was not made from
    # this HCL report's TD report.
    hcl = parse_hcl_report((vectors / "azure/kinvolk/hcl-report-tdx.bin").read_bytes())
    quote = parse_bincode_quote((vectors / "azure/kinvolk/quote.bin").read_bytes())
    document = parse_azure_document(evidence(vectors, "v1"))
    tdx = dataclasses.replace(
        document, tee="az-tdx-vtpm", shape="tdx", hcl=hcl, quote=quote, vcek=None,
        td_quote=(vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes())
    with pytest.raises(EvidenceRejected) as caught:
        verify_azure_evidence(tdx, now=TDX_TIME)
    assert caught.value.check == "td-quote-binding"
    assert caught.value.reason.startswith("the TD quote was not made from the HCL report's TD "
                                          "report: ")
    assert "mr_td" in caught.value.reason and "report_data" in caught.value.reason
    assert "quote-signature" in [c.name for c in caught.value.checks]


def test_declared_vm_configuration_flags_are_what_verify_emits(vectors: Path) -> None:
    result = verify_azure_evidence(evidence(vectors, "v1"), now=NOW)
    declared = TEE_CLAIMS["az-snp-vtpm"]
    for claim, names in declared.flags:
        emitted = result.claims[claim]
        # vm_configuration holds the flags the HCL states; the SNP ones every name.
        stated = [n for n in names if n in emitted]
        assert stated and all(isinstance(emitted[n], bool) for n in stated), claim
        assert claim == "vm_configuration" or stated == list(names)
    assert set(declared.identifying) <= set(result.claims)
    assert TEE_CLAIMS["az-tdx-vtpm"].decoded("vm_configuration") == declared.decoded(
        "vm_configuration")


def test_vcek_from_certs_when_the_evidence_has_none(vectors: Path) -> None:
    document = parse_azure_document(evidence(vectors, "v1"))
    assert document.vcek is not None
    bare = dataclasses.replace(document, vcek=None)
    refused = _refused(bare, "endorsement-key")
    assert "unverifiable without the VCEK" in refused.reason
    result = verify_azure_evidence(bare, now=NOW, certs=[document.vcek])
    assert result.tee == "az-snp-vtpm"


# --- each binding broken ---------------------------------------------------------------


def _edit_runtime(vectors: Path, change) -> dict[str, Any]:
    document = evidence(vectors, "v1")
    hcl = hcl_of(document)
    runtime = json.loads(variable_data(hcl))
    change(runtime)
    return with_hcl(document, replace_variable_data(hcl, json.dumps(runtime).encode()))


def test_variable_data_edited_is_refused(vectors: Path) -> None:
    def flip(runtime: dict[str, Any]) -> None:
        runtime["vm-configuration"]["secure-boot"] = False

    refused = _refused(_edit_runtime(vectors, flip), "var-data-binding")
    assert "report_data[0:32]" in refused.reason
    assert refused.reason.endswith("the variable data (attestation key, vm-configuration) was "
                                   "edited or belongs to another report")
    assert [c.name for c in refused.checks[:-1]] == [*SNP_CHECKS, "hcl-vmpl"]


def test_attestation_key_swapped_in_the_variable_data_is_refused(vectors: Path) -> None:
    other = load_pem_public_key((vectors / "azure/kinvolk/akpub.pem").read_bytes())
    assert isinstance(other, rsa.RSAPublicKey)
    n = other.public_numbers().n

    def swap(runtime: dict[str, Any]) -> None:
        ak = next(k for k in runtime["keys"] if k["kid"] == "HCLAkPub")
        ak["n"] = b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    refused = _refused(_edit_runtime(vectors, swap), "var-data-binding")
    assert "was edited or belongs to another report" in refused.reason


def test_quote_signed_by_another_attestation_key_is_refused(vectors: Path) -> None:
    # v1's HCL report (its AK) with v2's TPM quote (another VM's AK).
    document = {**evidence(vectors, "v1"), "tpm_quote": evidence(vectors, "v2")["tpm_quote"]}
    refused = _refused(document, "tpm-quote-signature")
    assert refused.reason.startswith("the TPM quote is not signed by the attestation key "
                                     "(HCLAkPub) of this HCL report's variable data")


def test_wrong_nonce_is_refused(vectors: Path) -> None:
    refused = _refused(evidence(vectors, "v2"), "tpm-nonce", nonce=CHALLENGE)
    assert refused.reason == (f"the TPM quote's extraData {V2_NONCE.hex()} is not the expected "
                              f"nonce {CHALLENGE.hex()} (a replayed or another session's quote)")


def test_pcr_value_edited_is_refused(vectors: Path) -> None:
    document = evidence(vectors, "v1")
    pcrs = list(document["tpm_quote"]["pcrs"])
    pcrs[7] = "00" * 32
    edited = {**document, "tpm_quote": {**document["tpm_quote"], "pcrs": pcrs}}
    refused = _refused(edited, "pcr-digest", nonce=CHALLENGE)
    assert refused.reason.endswith("not to the quote's signed pcrDigest "
                                   f"{_pcr_digest(document)}: a PCR value was edited")


def _pcr_digest(document: dict[str, Any]) -> str:
    parsed = parse_azure_document(document)
    return parsed.quote.attest.pcr_digest.hex()


def test_trustee_quote_files_paired_with_hcl_report_bin_are_refused(vectors: Path) -> None:
    # SOURCES.md: tpm-quote.msg/.sig do not belong to hcl-report.bin's VM.
    folder = vectors / "azure/trustee-snp"
    # The message selects PCRs 0-7 and 14; values for them (any will do: the signature is
    # checked first) from the JSON quote.
    every = json.loads((folder / "tpm-quote-v1.json").read_text())["pcrs"]
    pcrs = [every[i] for i in (0, 1, 2, 3, 4, 5, 6, 7, 14)]
    quote = make_quote((folder / "tpm-quote.sig").read_bytes(),
                       (folder / "tpm-quote.msg").read_bytes(),
                       [bytes.fromhex(p) for p in pcrs])
    vcek = load_pem_bundle((folder / "vcek.pem").read_bytes())[0].public_bytes(Encoding.DER)
    document = {"version": 1, "hcl_report": b64u((folder / "hcl-report.bin").read_bytes()),
                "vcek": b64u(vcek),
                "tpm_quote": {"signature": quote.signature.hex(), "message": quote.message.hex(),
                              "pcrs": pcrs}}
    refused = _refused(document, "tpm-quote-signature", nonce=CHALLENGE)
    assert "a quote from another VM or another key" in refused.reason
    # The hardware half and the binding did verify: only the pairing is wrong.
    assert [c.name for c in refused.checks if c.ok] == [*SNP_CHECKS, "hcl-vmpl",
                                                        "var-data-binding",
                                                        "attestation-key"]


def test_variable_data_of_another_report_is_refused(vectors: Path) -> None:
    # hcl-report.bin's genuine SEV-SNP report, with v1's (equally genuine) variable data.
    folder = vectors / "azure/trustee-snp"
    hcl = replace_variable_data((folder / "hcl-report.bin").read_bytes(),
                                variable_data(hcl_of(evidence(vectors, "v1"))))
    vcek = load_pem_bundle((folder / "vcek.pem").read_bytes())[0].public_bytes(Encoding.DER)
    document = {**evidence(vectors, "v1"), "hcl_report": b64u(hcl), "vcek": b64u(vcek)}
    refused = _refused(document, "var-data-binding")
    assert "belongs to another report" in refused.reason


def test_report_data_edited_in_the_hardware_report_is_refused(vectors: Path) -> None:
    document = evidence(vectors, "v1")
    # Verified once first, so the genuine report's signature is remembered: an edited
    # report is another key of that memory and is checked afresh.
    verify_azure_evidence(document, now=NOW)
    hcl = bytearray(hcl_of(document))
    at = 0x20 + snp_offsets.REPORT_DATA
    hcl[at] ^= 1
    refused = _refused(with_hcl(document, bytes(hcl)), "report-signature")
    assert "signature" in refused.reason


def test_report_requested_below_the_paravisor_is_refused(vectors: Path) -> None:
    # The report's signature covers VMPL, and no vector has a genuine VMPL>0 report: the
    # check itself is shown on the verified report's claims with the VMPL changed.
    parsed = parse_azure_document(evidence(vectors, "v1"))
    assert parsed.hcl.snp is not None and parsed.vcek is not None
    hardware = verify_report(parsed.hcl.snp, now=NOW, certs=[parsed.vcek])
    assert hcl_vmpl(hardware).ok and hardware.claims["vmpl"] == 0
    lowered = dataclasses.replace(hardware, claims={**hardware.claims, "vmpl": 2})
    with pytest.raises(EvidenceRejected) as caught:
        hcl_vmpl(lowered)
    assert caught.value.check == "hcl-vmpl"
    assert caught.value.reason.startswith("the SEV-SNP report was requested at VMPL 2, not 0")
