"""Azure vTPM evidence over RCAR, as Trustee's attester sends it (az-snp-vtpm, az-tdx-vtpm).

What the vectors allow and what they do not: every real TPM quote in them carries a fixed
nonce ("challenge", or Trustee's test digest), and a broker's challenge is random, so no
real quote can bind a live session. The tests therefore show:

* over HTTP, the real broker: sessions open under Trustee's tee names; the real evidence
  as captured is refused on the binding (its quote nonce is not this session's); evidence
  whose HCL report is real but whose quote binds this session (signed by a test attestation
  key) passes the binding and the hardware checks and is refused on the AK binding
  (``tpm-quote-signature``), under either binding scheme; every binding refusal names its
  comparison, and the audit log names the TEE;
* as functions, the broker's path after the binding with the vector's own nonce: the
  binding matched, the evidence verified, the token policy appraised and the EAR token
  issued with the Azure claims; a resource policy not allowing the TEE refuses it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwcrypto.jwk import JWK
from kbs_helpers import running_broker

from workbench.attestation.appraise import EarStatus, appraise, load_policy
from workbench.attestation.appraise.ear import issue_token, verify_token
from workbench.attestation.appraise.reference import policy_from_evidence
from workbench.attestation.formats.azure_evidence import parse_azure_document
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.result import EvidenceRejected
from workbench.errors import InputError
from workbench.kbs import runtime_binding
from workbench.kbs.appraisal import DEFAULT_ATTESTATION_POLICY
from workbench.kbs.config import load_config
from workbench.kbs.errors import KbsError
from workbench.kbs.evidence import identity
from workbench.protocol import PROTOCOL_VERSION
from workbench.protocol.errors import ErrorKind

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
TRUSTEE = VECTORS / "azure" / "trustee-snp"
# Trustee's v2 test evidence binds this value (its quote nonce and HCL user-data).
V2_BOUND = bytes.fromhex("982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9a"
                         "a398f647caa2338748cd0fd9f5f819ef")
# The VCEK in the vectors is valid from 2023 to 2030.
VECTOR_TIME = datetime(2025, 6, 1, tzinfo=UTC)
AK_REFUSAL = ("evidence rejected: tpm-quote-signature: the TPM quote is not signed by the "
              "attestation key (HCLAkPub) of this HCL report's variable data")


def trustee_evidence(version: str) -> dict[str, Any]:
    return json.loads((TRUSTEE / f"evidence-{version}.json").read_text())


def trustee_runtime_hash(nonce: str, pubkey: dict[str, Any], additional: str = "") -> bytes:
    # Written apart from runtime_binding: serde_json's sorted, compact output, which equals
    # RFC 8785 for the ASCII strings a runtime-data holds.
    text = json.dumps({"tee-pubkey": pubkey, "nonce": nonce, "additional-evidence": additional},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha384(text.encode()).digest()


def ec_key() -> dict[str, Any]:
    public = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    return {**public, "alg": "ECDH-ES+A256KW"}


@pytest.fixture(scope="module")
def test_ak() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def requote(document: dict[str, Any], extra: bytes, key: rsa.RSAPrivateKey
            ) -> dict[str, Any]:
    """``document`` with its TPM quote's extraData set to ``extra`` and signed by ``key``
    (everything else, PCRs and HCL report included, as captured)."""
    out = copy.deepcopy(document)
    # v0 spells bytes as lists of numbers under "quote"; v1 and v2 as hex under "tpm_quote".
    member, encode, decode = (("quote", list, bytes) if "quote" in out
                              else ("tpm_quote", bytes.hex, bytes.fromhex))
    quote = out[member]
    message = decode(quote["message"])
    (signer,) = struct.unpack_from(">H", message, 6)
    at = 8 + signer
    (old,) = struct.unpack_from(">H", message, at)
    message = message[:at] + struct.pack(">H", len(extra)) + extra + message[at + 2 + old:]
    quote["message"] = encode(message)
    quote["signature"] = encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256()))
    return out


def composite(nonce: str, pubkey: dict[str, Any], document: dict[str, Any],
              additional: str = "", **runtime: Any) -> dict[str, Any]:
    """An attest body as guest-components' kbs_protocol (RCAR 0.4.0) sends it."""
    return {"runtime-data": {"nonce": nonce, "tee-pubkey": pubkey, **runtime},
            "tee-evidence": {"primary_evidence": document, "additional_evidence": additional}}


def auth(http: httpx.Client, tee: str = "az-snp-vtpm") -> str:
    # Trustee's client announces the hash algorithms it supports; the broker selects none,
    # so the client uses its default, SHA-384.
    response = http.post("/kbs/v0/auth", json={
        "version": PROTOCOL_VERSION, "tee": tee,
        "extra-params": {"supported-hash-algorithms": ["sha256", "sha384", "sha512"]}})
    assert response.status_code == 200, response.text
    assert response.json()["extra-params"] == ""
    return response.json()["nonce"]


def problem(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["type"].rsplit(":", 1)[-1], body["detail"]


def last_audit(broker, kind: str) -> dict[str, Any]:
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": kind, "limit": 1000}).json()
    return records[-1]["payload"]


@pytest.fixture
def http(broker):
    with httpx.Client(base_url=broker.url, timeout=30) as client:
        yield client


# --- tee names --------------------------------------------------------------------------

@pytest.mark.parametrize("tee", ["az-snp-vtpm", "az-tdx-vtpm"])
def test_trustee_tee_names_open_a_session(http, broker, tee):
    nonce = auth(http, tee)
    assert len(base64.b64decode(nonce)) == 32
    assert last_audit(broker, "auth")["tee"] == tee


@pytest.mark.parametrize(("tee", "reason"), [
    ("azsnpvtpm", "tee 'azsnpvtpm' is the old kbs-types spelling of 'az-snp-vtpm'; send that "
                  "name"),
    ("aztdxvtpm", "tee 'aztdxvtpm' is the old kbs-types spelling of 'az-tdx-vtpm'"),
    ("az-sev-vtpm", "tee 'az-sev-vtpm' is an unknown TEE type (supported: sgx, tdx, snp, "
                    "az-snp-vtpm, az-tdx-vtpm, simulated)"),
])
def test_unknown_azure_tee_names_are_refused(http, broker, tee, reason):
    response = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION, "tee": tee})
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "UnsupportedTee")
    assert detail.startswith(reason)
    record = last_audit(broker, "refusal")
    assert record["problem"] == "UnsupportedTee" and record["reason"] == detail


def test_tee_not_in_allowed_tees_is_refused(tmp_path):
    with running_broker(tmp_path, allowed_tees=["snp", "simulated"]) as broker, \
            httpx.Client(base_url=broker.url, timeout=30) as http:
        response = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION,
                                                   "tee": "az-snp-vtpm"})
        assert problem(response) == (400, "UnsupportedTee",
                                     "tee 'az-snp-vtpm' is not allowed by this broker's "
                                     "allowed_tees setting (snp, simulated)")
        assert auth(http, "snp")


def test_allowed_tees_must_be_tees_the_broker_verifies(tmp_path):
    config = tmp_path / "kbs.json"
    config.write_text(json.dumps({"allowed_tees": ["az-snp-vtpm", "azsnpvtpm"]}))
    with pytest.raises(InputError, match="allowed_tees: azsnpvtpm is not a TEE this broker "
                                         "verifies"):
        load_config(config)
    config.write_text(json.dumps({"allowed_tees": ["az-snp-vtpm", "az-tdx-vtpm"]}))
    assert load_config(config).allowed_tees == ("az-snp-vtpm", "az-tdx-vtpm")


# --- the binding, over HTTP -------------------------------------------------------------

def test_captured_trustee_evidence_is_refused_on_the_quote_nonce(http, broker):
    # Real evidence, untouched: its quote carries "challenge", not this session's binding.
    nonce = auth(http)
    response = http.post("/kbs/v0/attest",
                         json=composite(nonce, ec_key(), trustee_evidence("v1")))
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "BindingMismatch")
    assert detail.startswith("tpm-nonce: the TPM quote's extraData (9 bytes, "
                             "6368616c6c656e6765...) does not bind this session: it must be "
                             "report_data_for(nonce, tee-pubkey, transport-key, session-key) or "
                             "SHA-384 of the canonical runtime-data")
    record = last_audit(broker, "attest")
    assert record["tee"] == "az-snp-vtpm" and record["verdict"] == "rejected"
    assert record["problem"] == "BindingMismatch" and record["reason"] == detail


@pytest.mark.parametrize("version", ["v0", "v1"])
def test_quote_bound_by_trustees_rule_reaches_the_ak_binding(http, broker, test_ak, version):
    nonce = auth(http)
    pubkey = ec_key()
    document = requote(trustee_evidence(version), trustee_runtime_hash(nonce, pubkey), test_ak)
    response = http.post("/kbs/v0/attest", json=composite(nonce, pubkey, document))
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "EvidenceRejected")
    assert detail.startswith(AK_REFUSAL)
    record = last_audit(broker, "attest")
    assert record["tee"] == "az-snp-vtpm" and record["problem"] == "EvidenceRejected"
    # Everything before the AK binding passed: the SEV-SNP report to AMD's roots and the
    # variable data to the report (the same bytes, verified here as the broker does).
    data = json.dumps(document).encode()
    with pytest.raises(EvidenceRejected) as caught:
        verify_evidence(data, tee="az-snp-vtpm", now=datetime.now(UTC))
    passed = [c.name for c in caught.value.checks if c.ok]
    assert passed == ["endorsement-key", "product", "cert-chain", "report-signature",
                      "signer-matches", "tcb-matches", "chip-id", "hcl-vmpl",
                      "var-data-binding", "attestation-key"]
    assert caught.value.check == "tpm-quote-signature"


def _attest_workbench_prefix(http, key: rsa.RSAPrivateKey, size: int) -> tuple[int, str, str]:
    """Attest as the workbench's own azure-cvm kernels do ({"evidence": base64(JSON)},
    report_data_for(...) with a transport key), the quote carrying ``size`` bytes of it."""
    nonce = auth(http)
    pubkey = ec_key()
    transport = bytes(range(32))
    bound = report_data_for(nonce, pubkey, transport)[:size]
    document = requote(trustee_evidence("v1"), bound, key)
    return problem(http.post("/kbs/v0/attest", json={
        "runtime-data": {"nonce": nonce, "tee-pubkey": pubkey, "transport-key": transport.hex()},
        "tee-evidence": {"evidence": base64.b64encode(json.dumps(document).encode()).decode()}}))


# The provider quotes the binding's 48-byte prefix (the most a SHA-384 vTPM's extraData
# holds); the whole 64 bytes is accepted too.
@pytest.mark.parametrize("size", [64, 48])
def test_quote_bound_by_the_workbench_rule_reaches_the_ak_binding(http, test_ak, size):
    status, kind, detail = _attest_workbench_prefix(http, test_ak, size)
    assert (status, kind) == (401, "EvidenceRejected") and detail.startswith(AK_REFUSAL)


@pytest.mark.parametrize("size", [32, 47])
def test_a_shorter_prefix_of_the_workbench_binding_is_refused(http, test_ak, size):
    status, kind, detail = _attest_workbench_prefix(http, test_ak, size)
    assert (status, kind) == (401, "BindingMismatch")
    assert detail.startswith(f"tpm-nonce: the TPM quote's extraData ({size} bytes, ")


def _binding_refusal(http, body: dict[str, Any]) -> str:
    response = http.post("/kbs/v0/attest", json=body)
    status, kind, detail = problem(response)
    assert (status, kind) == (401, "BindingMismatch"), detail
    return detail


def test_runtime_data_not_matching_the_quote_is_refused(http, test_ak):
    nonce = auth(http)
    bound_key, other_key = ec_key(), ec_key()
    document = requote(trustee_evidence("v1"), trustee_runtime_hash(nonce, bound_key), test_ak)
    detail = _binding_refusal(http, composite(nonce, other_key, document))
    assert detail.startswith("tpm-nonce: the TPM quote's extraData (48 bytes, ")


def test_additional_evidence_is_part_of_the_binding(http, test_ak):
    nonce = auth(http)
    pubkey = ec_key()
    document = requote(trustee_evidence("v1"), trustee_runtime_hash(nonce, pubkey), test_ak)
    detail = _binding_refusal(http, composite(nonce, pubkey, document, additional="{}"))
    assert detail.startswith("tpm-nonce: ")


def test_trustee_rule_does_not_cover_the_workbench_extensions(http, test_ak):
    # A transport key in runtime-data would be stated in the token unbound: only
    # report_data_for may bind such a session.
    nonce = auth(http)
    pubkey = ec_key()
    document = requote(trustee_evidence("v1"), trustee_runtime_hash(nonce, pubkey), test_ak)
    detail = _binding_refusal(http, composite(nonce, pubkey, document,
                                              **{"transport-key": "ab" * 32}))
    assert detail.endswith("it must be report_data_for(nonce, tee-pubkey, transport-key, "
                           "session-key) of this challenge")


def test_v2_evidence_must_repeat_the_binding_in_user_data(http, test_ak):
    # v2's HCL report carries Trustee's test digest in user-data, not this session's.
    nonce = auth(http)
    pubkey = ec_key()
    document = requote(trustee_evidence("v2"), trustee_runtime_hash(nonce, pubkey), test_ak)
    detail = _binding_refusal(http, composite(nonce, pubkey, document))
    assert detail == ("user-data-binding: evidence version 2 must repeat the bound value at "
                      "the start of the HCL runtime data's user-data, and it does not (an HCL "
                      "report made for another request)")


@pytest.mark.parametrize(("evidence", "reason"), [
    ({"version": 1, "tpm_quote": {}},
     "tee-evidence is not Azure vTPM evidence: Azure evidence shape: lacks hcl_report, vcek"),
    ({"version": 1, "hcl_report": "AAAA", "tpm_quote": {}, "vcek": "AAAA"},
     "tee-evidence is not Azure vTPM evidence: HCL report size: 3 bytes is too short"),
])
def test_malformed_trustee_evidence_names_the_part(http, evidence, reason):
    nonce = auth(http)
    response = http.post("/kbs/v0/attest", json=composite(nonce, ec_key(), evidence))
    status, kind, detail = problem(response)
    assert (status, kind) == (400, "MalformedEvidence")
    assert reason in detail, detail


# --- after the binding, with the vector's own nonce (functions the broker calls) ----------

def test_trustee_digest_is_rfc8785_canonical():
    # Keys sort by UTF-16 code units: U+1F600 (D83D DE00) before U+FB33, unlike code points.
    assert runtime_binding.canonical_json({"\ufb33": 1, "\U0001f600": 2, "a": [True, None]}) \
        == '{"a":[true,null],"\U0001f600":2,"\ufb33":1}'
    assert runtime_binding.canonical_json("\x0f\n\"\\é") == '"\\u000f\\n\\"\\\\é"'
    with pytest.raises(ValueError, match="no canonical form"):
        runtime_binding.canonical_json({"x": 1.5})
    pubkey = ec_key()
    assert runtime_binding.trustee_runtime_digest("n0nce", pubkey, "") == \
        trustee_runtime_hash("n0nce", pubkey)


def test_vector_binding_verification_appraisal_and_token(tmp_path):
    document = trustee_evidence("v2")
    bound = runtime_binding.Binding(runtime_binding.TRUSTEE, V2_BOUND)
    assert runtime_binding.match_binding(parse_azure_document(document), [bound]) == bound
    other = runtime_binding.Binding(runtime_binding.TRUSTEE, hashlib.sha384(b"x").digest())
    with pytest.raises(KbsError) as caught:
        runtime_binding.match_binding(parse_azure_document(document), [other])
    assert caught.value.detail.startswith("tpm-nonce: ")

    evidence = verify_evidence(json.dumps(document).encode(), tee="az-snp-vtpm",
                               now=VECTOR_TIME)
    assert evidence.report_data == V2_BOUND
    # The broker's token policy allows the Azure TEEs but pins no PCRs, so it affirms
    # nothing; a resource policy captured from this VM (policy init --from-evidence) does.
    token_rules = appraise(evidence, load_policy(DEFAULT_ATTESTATION_POLICY), now=VECTOR_TIME,
                           expected_report_data=V2_BOUND).rules
    assert {r.name for r in token_rules if r.passed} >= {"verified", "tee-allowed",
                                                          "report-data"}
    captured = policy_from_evidence(evidence, policy_id="this-vm")
    appraisal = appraise(evidence, load_policy(captured), now=VECTOR_TIME,
                         expected_report_data=V2_BOUND)
    assert appraisal.status == EarStatus.AFFIRMING, appraisal.failed_rules
    key = JWK.generate(kty="EC", crv="P-256")
    token = issue_token(appraisal, evidence, signing_key=key, issuer="http://127.0.0.1",
                        nonce="n", now=VECTOR_TIME)
    claims = verify_token(token, JWK.from_json(key.export_public()), now=VECTOR_TIME)
    text = json.dumps(claims.raw["submods"]["kernel"])
    assert "az-snp-vtpm" in text and evidence.claims["pcrs"]["0"] in text
    assert identity(evidence)["tee"] == "az-snp-vtpm"

    snp_only = load_policy({**captured, "allowed_tee": ["snp"]})
    refused = appraise(evidence, snp_only, now=VECTOR_TIME, expected_report_data=V2_BOUND)
    assert [r.name for r in refused.failed_rules] == ["tee-allowed"]


def test_a_replica_rederives_the_trustee_binding_from_the_row():
    # What the session row keeps is enough to recompute the value the evidence bound.
    pubkey = ec_key()
    inputs = runtime_binding.SessionInputs("n0nce", pubkey, additional_evidence="{}")
    options = runtime_binding.candidates(inputs)
    assert [b.scheme for b in options] == [runtime_binding.WORKBENCH, runtime_binding.TRUSTEE]
    trustee = options[1]
    assert trustee.value == trustee_runtime_hash("n0nce", pubkey, "{}")
    scheme, additional = runtime_binding.scheme_of(runtime_binding.stored(trustee, "{}"))
    replica = runtime_binding.SessionInputs("n0nce", pubkey, additional_evidence=additional)
    assert runtime_binding.expected_for(scheme, replica) == trustee.value
    workbench = options[0]
    assert runtime_binding.stored(workbench, "{}") is None
    assert runtime_binding.expected_for(*runtime_binding.scheme_of(None)[:1], inputs) == \
        report_data_for("n0nce", pubkey)
    # With a workbench extension, or without a composite tee-evidence, only report_data_for.
    extended = runtime_binding.SessionInputs("n0nce", pubkey, transport_key=b"k",
                                             additional_evidence="")
    assert [b.scheme for b in runtime_binding.candidates(extended)] == ["workbench"]
    bare = runtime_binding.SessionInputs("n0nce", pubkey)
    assert [b.scheme for b in runtime_binding.candidates(bare)] == ["workbench"]


def test_verified_evidence_carrying_trustees_binding_is_accepted_by_its_own_comparison():
    # The broker compared every scheme's value with the workbench's 64-byte matcher, so a
    # session bound Trustee's way (48 bytes) was refused after its evidence verified. The
    # whole path cannot run here: a quote over a live nonce needs the VM's attestation key.
    evidence = verify_evidence(json.dumps(trustee_evidence("v2")).encode(), tee="az-snp-vtpm",
                               now=VECTOR_TIME)
    trustee = runtime_binding.Binding(runtime_binding.TRUSTEE, V2_BOUND)
    runtime_binding.require_carried(trustee, evidence.report_data)  # no refusal
    other = runtime_binding.Binding(runtime_binding.TRUSTEE, hashlib.sha384(b"x").digest())
    with pytest.raises(KbsError) as caught:
        runtime_binding.require_carried(other, evidence.report_data)
    assert caught.value.kind == ErrorKind.BINDING_MISMATCH
    assert caught.value.detail == (
        "evidence report data does not bind this session: it must be SHA-384 of the "
        "canonical runtime-data {additional-evidence, nonce, tee-pubkey} (Trustee's attester) "
        "of this challenge")
    workbench = runtime_binding.Binding(runtime_binding.WORKBENCH,
                                        report_data_for("n0nce", ec_key()))
    with pytest.raises(KbsError) as caught:
        runtime_binding.require_carried(workbench, evidence.report_data)
    assert "report_data_for(nonce, tee-pubkey, transport-key, session-key)" in \
        caught.value.detail
