"""The ``azure-vtpm`` provider (runtime ``azure-cvm``) against swtpm, Debian's software TPM.

The TPM half is real: swtpm holds a real HCL report (kinvolk's, 2048 bytes, in NV index
0x01400001) and a persisted attestation key at 0x81000003; the provider reads the report
and quotes through tpm2-tools, with the session binding as the quote's extraData. The
certificate cache is a loopback server answering THIM's path with THIM's JSON members,
built from the vectors' real VCEKs (no recorded THIM answer exists in the vectors).

What needs a real Azure CVM: a quote signed by the HCLAkPub the hardware report binds.
swtpm's key is not that key, so full verification refuses at ``tpm-quote-signature``, and
that refusal is asserted here as the limit. The vectors also lack the VCEK of kinvolk's
chip, so the evidence exactly as produced stops earlier, at the SEV-SNP signature; the
AK refusal is shown by pairing the swtpm quote with Trustee's HCL report (2600 bytes,
too large for swtpm's 2048-byte NV indices), whose VCEK the vectors hold.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from azure_vectors import NOW, b64u, unb64u
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key
from jwcrypto.jwk import JWK
from swtpm_helpers import THIM_PATH, MetadataServer, running_swtpm, thim_response

from workbench.attestation.appraise import appraise, load_policy
from workbench.attestation.formats.azure_evidence import parse_azure_evidence
from workbench.attestation.tee import TeeUnavailable, get_provider
from workbench.attestation.tee.azure_imds import (
    EndpointUnavailable,
    fetch_certification,
    fetch_td_quote,
)
from workbench.attestation.tee.azure_vtpm import AzureVtpmProvider
from workbench.attestation.tee.binding import (
    TPM_BINDING_SIZE,
    binding_matches,
    report_data_for,
)
from workbench.attestation.verify.azure import var_data_binding, verify_azure_evidence
from workbench.attestation.verify.certs import load_pem_bundle
from workbench.attestation.verify.result import EvidenceRejected, VerifiedEvidence
from workbench.attestation.verify.tpm_quote import CHECKS, attestation_key, verify_tpm_quote
from workbench.errors import WorkbenchError
from workbench.kernel.runtimes import Machine, RuntimeUnavailable, resolve_runtime

KEY = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
TRANSPORT = b"\x07" * 32
BINDING = report_data_for("nonce-from-the-broker", KEY, TRANSPORT)
# What the quote carries: the binding's first 48 bytes (Azure's vTPM holds no more).
QUOTED = BINDING[:TPM_BINDING_SIZE]


@pytest.fixture(scope="module")
def kinvolk_report(vectors: Path) -> bytes:
    return (vectors / "azure/kinvolk/hcl-report-snp.bin").read_bytes()


@pytest.fixture(scope="module")
def azure_tpm(tmp_path_factory, kinvolk_report):
    """swtpm seeded like an Azure SEV-SNP CVM's vTPM; yields (swtpm, its AK's PEM)."""
    with running_swtpm(tmp_path_factory.mktemp("swtpm")) as tpm:
        ak = tpm.persist_ak()
        tpm.write_nv(kinvolk_report)
        yield tpm, ak


@pytest.fixture(scope="module")
def thim(vectors: Path):
    """The certificate cache of kinvolk's VM as far as the vectors go: certs.pem (another
    chip's VCEK, as SOURCES.md says)."""
    answer = thim_response(vectors / "azure/kinvolk/certs.pem")
    with MetadataServer({("GET", THIM_PATH): (200, answer)}) as server:
        yield server


@pytest.fixture
def bare_tpm(tmp_path):
    (tmp_path / "state").mkdir()
    with running_swtpm(tmp_path / "state") as tpm:
        yield tpm


def _provider(tpm, server, **options) -> AzureVtpmProvider:
    return AzureVtpmProvider(tcti=tpm.tcti, cert_url=server.url + THIM_PATH, **options)


@pytest.fixture(scope="module")
def produced(azure_tpm, thim) -> bytes:
    tpm, _ = azure_tpm
    return get_provider("azure-vtpm", tcti=tpm.tcti,
                        cert_url=thim.url + THIM_PATH).evidence(BINDING)


def test_the_evidence_is_trustees_v1_json_from_the_vtpm(produced, kinvolk_report, thim,
                                                        vectors):
    document = json.loads(produced)
    assert set(document) == {"version", "hcl_report", "tpm_quote", "vcek"}
    assert document["version"] == 1
    parsed = parse_azure_evidence(produced)
    assert parsed.tee == "az-snp-vtpm" and parsed.shape == "v1"
    assert parsed.hcl.raw == kinvolk_report  # read from NV index 0x01400001 as written
    vcek = load_pem_bundle((vectors / "azure/kinvolk/certs.pem").read_bytes())[0]
    assert parsed.vcek == vcek.public_bytes(Encoding.DER)
    fetched = [r for r in thim.requests if r["path"] == THIM_PATH]
    assert fetched and fetched[-1]["method"] == "GET"
    assert fetched[-1]["headers"]["Metadata"] == "true"
    selection = parsed.quote.attest.pcr_selection
    assert [(bank.hash_name, bank.pcrs) for bank in selection] == [("sha256", tuple(range(24)))]


def test_the_tpm_half_verifies_and_carries_the_session_binding(produced, azure_tpm):
    _, ak = azure_tpm
    parsed = parse_azure_evidence(produced)
    swtpm_key = load_pem_public_key(ak)
    assert isinstance(swtpm_key, rsa.RSAPublicKey)
    assert parsed.quote.attest.extra_data == QUOTED
    checks = verify_tpm_quote(parsed.quote, swtpm_key, QUOTED)
    assert [c.name for c in checks] == list(CHECKS) and all(c.ok for c in checks)
    assert var_data_binding(parsed.hcl).ok
    # What the broker compares for az-*: the quote's extraData against its own binding.
    assert binding_matches(parsed.quote.attest.extra_data, BINDING)
    other = report_data_for("another-nonce", KEY, TRANSPORT)
    assert not binding_matches(parsed.quote.attest.extra_data, other)
    with pytest.raises(EvidenceRejected) as refused:
        verify_tpm_quote(parsed.quote, swtpm_key, other[:TPM_BINDING_SIZE])
    assert refused.value.check == "tpm-nonce"


def test_each_evidence_has_a_fresh_quote_over_its_own_binding(azure_tpm, thim):
    tpm, _ = azure_tpm
    provider = _provider(tpm, thim)
    second = report_data_for("second-nonce", KEY, TRANSPORT)
    quotes = [parse_azure_evidence(provider.evidence(b)).quote for b in (BINDING, second)]
    assert [q.attest.extra_data for q in quotes] == [QUOTED, second[:TPM_BINDING_SIZE]]
    assert quotes[0].signature != quotes[1].signature


def test_full_verification_needs_a_real_azure_cvm(produced, azure_tpm, vectors):
    """The honest limit: swtpm's key is not the HCLAkPub the hardware report binds."""
    _, ak = azure_tpm
    parsed = parse_azure_evidence(produced)
    hcl_ak = attestation_key(parsed.hcl.runtime.ak_pub)
    assert hcl_ak.public_numbers() != load_pem_public_key(ak).public_numbers()
    # As produced: the vectors have no VCEK for kinvolk's chip, so the SNP signature fails.
    with pytest.raises(EvidenceRejected) as as_produced:
        verify_azure_evidence(produced, now=NOW, nonce=QUOTED)
    assert as_produced.value.check == "report-signature"
    # Trustee's HCL report verifies with its VCEK (fetched through the THIM client); paired
    # with the swtpm quote, everything up to the AK binding holds and that check refuses.
    real = (vectors / "azure/trustee-snp/hcl-report.bin").read_bytes()
    answer = thim_response(vectors / "azure/trustee-snp/vcek.pem")
    with MetadataServer({("GET", THIM_PATH): (200, answer)}) as server:
        certification = fetch_certification(server.url + THIM_PATH)
    paired = {**json.loads(produced), "hcl_report": b64u(real),
              "vcek": b64u(certification.vcek)}
    with pytest.raises(EvidenceRejected) as refused:
        verify_azure_evidence(paired, now=NOW, nonce=QUOTED)
    assert refused.value.check == "tpm-quote-signature"
    assert "not signed by the attestation key (HCLAkPub)" in refused.value.reason
    passed = {c.name for c in refused.value.checks if c.ok}
    assert {"report-signature", "var-data-binding", "attestation-key"} <= passed


def test_the_quoted_prefix_binds_and_nothing_shorter_or_different_does():
    assert binding_matches(BINDING, BINDING) and binding_matches(QUOTED, BINDING)
    flipped = bytes([QUOTED[0] ^ 1]) + QUOTED[1:]
    for wrong in (flipped, BINDING[:47], BINDING[:32], b"", BINDING[:49], BINDING + b"\0"):
        assert not binding_matches(wrong, BINDING), len(wrong)


def test_appraisal_reads_the_quoted_prefix_as_the_sessions_binding():
    """The broker's report-data rule on az-* evidence, whose report data is the extraData."""
    evidence = VerifiedEvidence(tee="az-snp-vtpm", claims={}, report_data=QUOTED, checks=())
    policy = load_policy({"id": "azure"})
    bound = appraise(evidence, policy, now=NOW, expected_report_data=BINDING)
    assert [r.passed for r in bound.rules if r.name == "report-data"] == [True]
    other = report_data_for("another-nonce", KEY, TRANSPORT)
    replayed = appraise(evidence, policy, now=NOW, expected_report_data=other)
    assert [r.passed for r in replayed.rules if r.name == "report-data"] == [False]


def test_report_data_must_be_the_64_byte_binding(azure_tpm, thim):
    tpm, _ = azure_tpm
    with pytest.raises(ValueError, match="exactly 64 bytes"):
        _provider(tpm, thim).evidence(b"short")


# --- refusals, each naming its cause ------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refuses_when_no_tpm_answers(tmp_path, thim):
    socket_tcti = f"swtpm:host=127.0.0.1,port={_closed_port()}"
    with pytest.raises(TeeUnavailable, match=rf"no TPM reachable at {socket_tcti}: .*connect"):
        AzureVtpmProvider(tcti=socket_tcti, cert_url=thim.url + THIM_PATH).evidence(BINDING)
    device = f"device:{tmp_path / 'tpmrm0'}"
    with pytest.raises(TeeUnavailable, match=r"no TPM reachable at device:.*tpmrm0: Failed to "
                                             r"open specified TCTI device file"):
        _ = AzureVtpmProvider(tcti=device).tee


def test_refuses_a_tpm_without_the_hcl_report(bare_tpm, thim):
    bare_tpm.persist_ak()
    with pytest.raises(TeeUnavailable, match=r"has no NV index 0x01400001 \(the HCL report\): "
                                             r"it is not the vTPM of an Azure"):
        _provider(bare_tpm, thim).evidence(BINDING)


def test_refuses_a_tpm_without_the_attestation_key(bare_tpm, thim, kinvolk_report):
    bare_tpm.write_nv(kinvolk_report)
    with pytest.raises(TeeUnavailable, match="has no attestation key at 0x81000003"):
        _provider(bare_tpm, thim).evidence(BINDING)


def test_refuses_an_nv_index_that_is_not_an_hcl_report(bare_tpm, thim):
    bare_tpm.persist_ak()
    bare_tpm.write_nv(b"\x00" * 256)
    with pytest.raises(WorkbenchError, match=r"NV index 0x01400001 does not hold an HCL report: "
                                             r"HCL report size"):
        _provider(bare_tpm, thim).evidence(BINDING)


def test_refuses_when_the_certificate_endpoint_is_missing(azure_tpm):
    tpm, _ = azure_tpm
    url = f"http://127.0.0.1:{_closed_port()}{THIM_PATH}"
    with pytest.raises(EndpointUnavailable, match=rf"cannot reach Azure's certificate endpoint "
                                                  rf"at {url} \(ConnectError"):
        AzureVtpmProvider(tcti=tpm.tcti, cert_url=url).evidence(BINDING)


@pytest.mark.parametrize("routes, reason", [
    ({}, r"answered HTTP 404"),
    ({("GET", THIM_PATH): (200, {"tcbm": "7308000000000003", "certificateChain": ""})},
     r"the certificate answer lacks vcekCert"),
    ({("GET", THIM_PATH): (200, b"<html>captive portal</html>")},
     r"the certificate answer is not JSON"),
    ({("GET", THIM_PATH): (200, {"vcekCert": "not a PEM", "certificateChain": "",
                                 "tcbm": "00"})},
     r"vcekCert holds no PEM certificate"),
])
def test_refuses_what_the_certificate_endpoint_gets_wrong(azure_tpm, routes, reason):
    tpm, _ = azure_tpm
    with MetadataServer(routes) as server, pytest.raises(WorkbenchError, match=reason):
        _provider(tpm, server).evidence(BINDING)


def test_the_td_quote_comes_from_the_hosts_quoting_service(vectors):
    """TDX: the TD report goes to /acc/tdquote; the answer's quote is returned as sent.
    (Azure's TDX HCL report is 2600 bytes, too large for swtpm, so the TDX provider path
    up to this call is not exercised here.)"""
    td_report = bytes(range(256)) * 4
    quote = (vectors / "tdx/go-tdx-guest-quote-v4.dat").read_bytes()
    routes = {("POST", "/acc/tdquote"): (200, {"quote": b64u(quote)})}
    with MetadataServer(routes) as server:
        assert fetch_td_quote(td_report, server.url + "/acc/tdquote") == quote
    sent = json.loads(server.requests[-1]["body"])
    assert unb64u(sent["report"]) == td_report
    with MetadataServer({("POST", "/acc/tdquote"): (200, {"error": "busy"})}) as server, \
            pytest.raises(WorkbenchError, match="the TD quote answer has no 'quote' string"):
        fetch_td_quote(td_report, server.url + "/acc/tdquote")


# --- the runtime ---------------------------------------------------------------------------


def _machine(root: Path, tcti: str | None) -> Machine:
    (root / "dev").mkdir(exist_ok=True)
    return Machine(dev=root / "dev", tsm=root / "tsm", which=shutil.which, tpm_tcti=tcti)


def test_auto_picks_azure_cvm_when_its_probe_passes(azure_tpm, tmp_path):
    tpm, _ = azure_tpm
    chosen = resolve_runtime("auto", allow_simulation=False, machine=_machine(tmp_path, tpm.tcti))
    assert chosen.name == "azure-cvm" and chosen.provider == "azure-vtpm" and chosen.hardware


def test_explicit_azure_cvm_without_a_tpm_names_the_device(tmp_path):
    with pytest.raises(RuntimeUnavailable) as refused:
        resolve_runtime("azure-cvm", allow_simulation=True, machine=_machine(tmp_path, None))
    dev = tmp_path / "dev"
    assert (f"kernel runtime 'azure-cvm' was asked for, but no TPM device ({dev}/tpmrm0 and "
            f"{dev}/tpm0 missing)") in str(refused.value)
    with pytest.raises(RuntimeUnavailable) as auto:
        resolve_runtime("auto", allow_simulation=False, machine=_machine(tmp_path, None))
    assert "azure-cvm: no TPM device" in str(auto.value)


def test_the_probe_names_missing_tools_nv_index_and_report(bare_tpm, tmp_path):
    machine = Machine(dev=tmp_path, tsm=tmp_path, which=lambda _name: None,
                      tpm_tcti=bare_tpm.tcti)
    with pytest.raises(RuntimeUnavailable, match=r"tpm2-tools is not installed \(tpm2_getcap, "
                                                 r"tpm2_nvread, tpm2_quote not on PATH\)"):
        resolve_runtime("azure-cvm", allow_simulation=False, machine=machine)
    machine = _machine(tmp_path, bare_tpm.tcti)
    with pytest.raises(RuntimeUnavailable, match=r"has no NV index 0x01400001 \(the HCL "
                                                 r"report\): not an Azure confidential VM"):
        resolve_runtime("azure-cvm", allow_simulation=False, machine=machine)
    bare_tpm.write_nv(b"HCLA" + b"\x00" * 60)
    with pytest.raises(RuntimeUnavailable, match=r"NV index 0x01400001 does not hold an HCL "
                                                 r"report \(HCL report size"):
        resolve_runtime("azure-cvm", allow_simulation=False, machine=machine)


def test_the_provider_names_the_tee_of_the_report(azure_tpm, thim):
    tpm, _ = azure_tpm
    assert _provider(tpm, thim).tee == "az-snp-vtpm"
