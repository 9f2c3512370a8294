"""Appraising Azure vTPM evidence: PCR and vm-configuration rules next to the SEV-SNP ones,
policies captured from evidence (`policy init --from-evidence`), ACI's HOST_DATA from a CCE
policy (`policy cce-hash`); the commands run as a user runs them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from azure_vectors import CHALLENGE, NOW, evidence

from workbench.attestation.appraise import appraise, load_policy
from workbench.attestation.appraise.cce import cce_host_data
from workbench.attestation.appraise.policy import PolicyError
from workbench.attestation.appraise.reference import DEFAULT_PCRS, policy_from_evidence
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.verify.azure import verify_azure_evidence
from workbench.attestation.verify.result import VerifiedEvidence

REGO = b'package policy\n\napi_version := "0.10.0"\n'


@pytest.fixture
def verified(vectors: Path) -> VerifiedEvidence:
    return verify_azure_evidence(evidence(vectors, "v1"), now=NOW, nonce=CHALLENGE)


def _policy(verified: VerifiedEvidence, **refs: Any) -> Any:
    base = {"pcrs": {"0": verified.claims["pcrs"]["0"]}}
    return load_policy({"id": "az", "allowed_tee": ["az-snp-vtpm"],
                        "reference_values": {"az-snp-vtpm": {**base, **refs}}})


def _rule(result: Any, name: str) -> Any:
    return next(r for r in result.rules if r.name == name)


# --- rules -----------------------------------------------------------------------------


def test_captured_policy_affirms_its_evidence(verified: VerifiedEvidence) -> None:
    document = policy_from_evidence(verified, policy_id="captured")
    refs = document["reference_values"]["az-snp-vtpm"]
    assert sorted(refs["pcrs"]) == sorted(str(i) for i in DEFAULT_PCRS)
    assert refs["vm_configuration"] == {"secure_boot": True, "tpm_enabled": True,
                                        "console_enabled": True}
    assert "host_data" not in refs  # all zero: pins nothing
    assert refs["min_tcb"] == verified.claims["reported_tcb"]
    result = appraise(verified, load_policy(document), now=NOW)
    assert result.passed, result.failed_rules
    names = {r.name for r in result.rules}
    assert {"az-snp-vtpm.pcrs.7", "az-snp-vtpm.vm_configuration.secure_boot",
            "az-snp-vtpm.measurement", "az-snp-vtpm.min_tcb.snp", "verified"} <= names


def test_pcr_not_a_reference_value_is_refused(verified: VerifiedEvidence) -> None:
    policy = _policy(verified, pcrs={"4": "00" * 32})
    result = appraise(verified, policy, now=NOW)
    rule = _rule(result, "az-snp-vtpm.pcrs.4")
    assert not rule.passed
    assert rule.reason.startswith("PCR 4 ") and rule.reason.endswith(
        "is not a reference value of the policy")
    assert [r.name for r in result.failed_rules] == ["az-snp-vtpm.pcrs.4"]


def test_pcr_one_of_several_values_passes(verified: VerifiedEvidence) -> None:
    actual = verified.claims["pcrs"]["4"]
    policy = _policy(verified, pcrs={"4": ["00" * 32, actual.upper()]})
    assert _rule(appraise(verified, policy, now=NOW), "az-snp-vtpm.pcrs.4").passed


def test_vm_configuration_flag_refused(verified: VerifiedEvidence) -> None:
    policy = _policy(verified, vm_configuration={"console_enabled": False, "secure_boot": True})
    result = appraise(verified, policy, now=NOW)
    assert _rule(result, "az-snp-vtpm.vm_configuration.secure_boot").passed
    rule = _rule(result, "az-snp-vtpm.vm_configuration.console_enabled")
    assert not rule.passed
    assert rule.reason == "vm-configuration console_enabled is on; the policy requires off"


def test_vm_configuration_flag_not_stated_is_refused(verified: VerifiedEvidence) -> None:
    policy = _policy(verified, vm_configuration={"tpm_persisted": True})
    rule = _rule(appraise(verified, policy, now=NOW), "az-snp-vtpm.vm_configuration.tpm_persisted")
    assert not rule.passed
    assert rule.reason == "the HCL vm-configuration does not state tpm_persisted"


def test_measurement_alone_does_not_pin_an_azure_guest(verified: VerifiedEvidence) -> None:
    policy = load_policy({"id": "az", "reference_values": {"az-snp-vtpm": {
        "measurement": verified.claims["measurement"]}}})
    rule = _rule(appraise(verified, policy, now=NOW), "reference-values")
    assert not rule.passed
    assert rule.reason == ("policy has no reference pcrs for az-snp-vtpm: any code would "
                           "pass, so none does")


def test_snp_rules_apply_to_the_azure_snp_report(verified: VerifiedEvidence) -> None:
    policy = _policy(verified, host_data="11" * 32, min_tcb={"microcode": 255},
                     policy={"debug": False, "smt": False})
    result = appraise(verified, policy, now=NOW)
    failed = {r.name: r.reason for r in result.failed_rules}
    assert set(failed) == {"az-snp-vtpm.host_data", "az-snp-vtpm.min_tcb.microcode",
                           "az-snp-vtpm.policy.smt"}
    assert failed["az-snp-vtpm.min_tcb.microcode"] == (
        "reported TCB microcode SVN 219 is below the policy minimum 255")
    assert _rule(result, "az-snp-vtpm.policy.debug").passed


def test_report_data_rule_compares_the_quote_nonce(verified: VerifiedEvidence) -> None:
    policy = _policy(verified)
    ok = appraise(verified, policy, now=NOW, expected_report_data=CHALLENGE)
    assert _rule(ok, "report-data").passed
    other = appraise(verified, policy, now=NOW, expected_report_data=b"x" * 9)
    assert not _rule(other, "report-data").passed


@pytest.mark.parametrize(("refs", "message"), [
    ({"pcrs": {"24": "00" * 32}}, "reference_values/az-snp-vtpm/pcrs"),
    ({"pcrs": {"0": "00"}}, "reference_values/az-snp-vtpm/pcrs/0"),
    ({"pcrs": {}}, "reference_values/az-snp-vtpm/pcrs"),
    ({"vm_configuration": {"secure_boot": "yes"}},
     "reference_values/az-snp-vtpm/vm_configuration/secure_boot: 'yes' is not of type"),
    ({"vm_configuration": {"securebot": True}}, "'securebot' was unexpected"),
    ({"policy": {"debgu": False}}, "reference_values/az-snp-vtpm/policy: .*'debgu'"),
])
def test_schema_refuses_bad_azure_references(refs: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy({"id": "p", "reference_values": {"az-snp-vtpm": refs}})


def test_tdx_vtpm_references_load() -> None:
    policy = load_policy({"id": "p", "allowed_tee": ["az-tdx-vtpm"], "reference_values": {
        "az-tdx-vtpm": {"mrtd": "AA" * 48, "pcrs": {"7": "bb" * 32},
                        "vm_configuration": {"secure_boot": True}}}})
    refs = policy.references("az-tdx-vtpm")
    assert refs["mrtd"] == ("aa" * 48,) and refs["pcrs"] == {"7": ("bb" * 32,)}


# --- ACI: HOST_DATA of a CCE policy -------------------------------------------------------


def test_cce_host_data_of_base64_text_and_arm_template() -> None:
    expected = hashlib.sha256(REGO).hexdigest()
    encoded = base64.b64encode(REGO)
    assert cce_host_data(encoded + b"\n") == (expected, "base64")
    assert cce_host_data(REGO) == (expected, "text")
    template = json.dumps({"resources": [{"properties": {"confidentialComputeProperties": {
        "ccePolicy": encoded.decode()}}}]}).encode()
    assert cce_host_data(template) == (expected, "arm")
    # Text is hashed byte for byte: a trailing newline is another policy.
    assert cce_host_data(REGO + b"\n", "text")[0] != expected


@pytest.mark.parametrize(("data", "form", "message"), [
    (b"", "auto", "CCE policy: the file is empty"),
    (b"not base64!", "base64", "CCE policy: not base64"),
    (base64.b64encode(b"\xff\xfe"), "base64", "does not decode to UTF-8 Rego text"),
    (b'{"a": 1}', "auto", "the ARM template has 0 ccePolicy values"),
    (b"\xff", "text", "CCE policy: the text is not UTF-8"),
])
def test_malformed_cce_policy(data: bytes, form: str, message: str) -> None:
    with pytest.raises(MalformedEvidence, match=message):
        cce_host_data(data, form)


def test_host_data_rule_pins_an_aci_policy() -> None:
    host_data = cce_host_data(REGO)[0]
    policy = load_policy({"id": "aci", "reference_values": {"snp": {
        "measurement": "00" * 48, "host_data": host_data}}})
    claims = {"measurement": "00" * 48, "host_data": host_data, "debug": False}
    good = VerifiedEvidence(tee="snp", claims=claims, report_data=b"", checks=())
    assert _rule(appraise(good, policy, now=NOW), "snp.host_data").passed
    other = VerifiedEvidence(tee="snp", claims={**claims, "host_data": "22" * 32},
                             report_data=b"", checks=())
    rule = _rule(appraise(other, policy, now=NOW), "snp.host_data")
    assert not rule.passed
    assert rule.reason.startswith("host_data ") and rule.reason.endswith(
        "is not a reference value of the policy")


# --- the commands ----------------------------------------------------------------------


@pytest.fixture
def run(workbench_cli: str, _isolated_home: Path):
    def invoke(*args: str | Path) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [workbench_cli, *map(str, args)], capture_output=True, text=True, timeout=120,
            env={**os.environ, "WORKBENCH_HOME": str(_isolated_home)},
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return invoke


def test_cli_verify_azure_evidence(run, vectors: Path) -> None:
    path = vectors / "azure/trustee-snp/evidence-v2.json"
    result = run("verify", path, "--now", "2025-06-01", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["evidence"]["tee"] == "az-snp-vtpm"
    assert document["evidence"]["claims"]["vm_configuration"]["secure_boot"] is True
    text = run("verify", path, "--now", "2025-06-01", "--type", "az-snp-vtpm")
    assert "ok     pcr-digest" in text.stdout and "verdict: VALID" in text.stdout


def test_cli_wrong_nonce_exits_1_naming_the_check(run, vectors: Path) -> None:
    result = run("verify", vectors / "azure/trustee-snp/evidence-v1.json", "--now",
                 "2025-06-01", "--nonce", "00")
    assert result.returncode == 1
    assert "verdict: INVALID (tpm-nonce: the TPM quote's extraData 6368616c6c656e6765 is not " \
           "the expected nonce 00" in result.stdout
    assert run("verify", vectors / "azure/trustee-snp/evidence-v1.json",
               "--nonce", "zz").returncode == 2


def test_cli_bare_hcl_report_is_malformed(run, vectors: Path) -> None:
    result = run("verify", vectors / "azure/trustee-snp/hcl-report.bin")
    assert result.returncode == 2
    assert "bare HCL report: it is written once per boot" in result.stderr


def test_cli_policy_init_from_evidence_then_verify(run, vectors: Path, tmp_path: Path) -> None:
    path = vectors / "azure/trustee-snp/evidence-v1.json"
    policy = tmp_path / "azure.json"
    init = run("policy", "init", "--from-evidence", path, "--now", "2025-06-01",
               "--pcrs", "0,1,2,3,4,5,6,7,14", "--out", policy)
    assert init.returncode == 0, init.stderr
    assert "pins measurement, min_tcb, pcrs, vm_configuration of az-snp-vtpm" in init.stdout
    assert "trust on first use" in init.stdout
    written = json.loads(policy.read_text())
    assert sorted(written["reference_values"]["az-snp-vtpm"]["pcrs"], key=int) == [
        "0", "1", "2", "3", "4", "5", "6", "7", "14"]
    affirmed = run("verify", path, "--now", "2025-06-01", "--policy", policy)
    assert affirmed.returncode == 0, affirmed.stdout
    assert "pass az-snp-vtpm.pcrs.14" in affirmed.stdout
    # Another VM's evidence (v2: other PCRs, other measurement) is refused by it.
    other = run("verify", vectors / "azure/trustee-snp/evidence-v2.json", "--now", "2025-06-01",
                "--policy", policy)
    assert other.returncode == 1
    assert "FAIL az-snp-vtpm.pcrs.0: PCR 0 " in other.stdout


def test_cli_policy_init_refuses_unverifiable_evidence(run, vectors: Path,
                                                       tmp_path: Path) -> None:
    document = evidence(vectors, "v1")
    document["tpm_quote"] = evidence(vectors, "v2")["tpm_quote"]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(document))
    result = run("policy", "init", "--from-evidence", path, "--now", "2025-06-01")
    assert result.returncode == 1
    assert "does not verify, so no policy is written from it: tpm-quote-signature" in \
        result.stderr
    bad_pcrs = run("policy", "init", "--from-evidence",
                   vectors / "azure/trustee-snp/evidence-v1.json", "--pcrs", "0,24")
    assert bad_pcrs.returncode == 2
    assert "--pcrs: '0,24': give distinct PCR numbers from 0 to 23" in bad_pcrs.stderr
    assert run("policy", "init", "--pcrs", "1").returncode == 2


def test_cli_cce_hash(run, tmp_path: Path) -> None:
    path = tmp_path / "policy.rego.b64"
    path.write_bytes(base64.b64encode(REGO))
    result = run("policy", "cce-hash", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hashlib.sha256(REGO).hexdigest()
    assert "read as base64" in result.stderr
    as_json = json.loads(run("policy", "cce-hash", path, "--json").stdout)
    assert as_json["policy_snippet"] == {"reference_values": {"snp": {
        "host_data": hashlib.sha256(REGO).hexdigest()}}}
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    refused = run("policy", "cce-hash", empty)
    assert refused.returncode == 2
    assert "CCE policy: the file is empty" in refused.stderr


def test_cli_type_choices_are_the_verifiers() -> None:
    # The CLI keeps its own copy so building the parser imports no verifier.
    from workbench.attestation.commands import TEE_TYPE_CHOICES
    from workbench.attestation.verify import TEE_CHOICES

    assert TEE_TYPE_CHOICES == TEE_CHOICES


def test_cli_policy_init_from_a_bare_snp_report(run, vectors: Path, tmp_path: Path) -> None:
    report = vectors / "sev-snp/go-sev-guest-attestation.bin"
    vcek = vectors / "sev-snp/go-sev-guest-vcek.der"
    policy = tmp_path / "snp.json"
    init = run("policy", "init", "--from-evidence", report, "--certs", vcek,
               "--now", "2025-06-01", "--out", policy)
    assert init.returncode == 0, init.stderr
    refs = json.loads(policy.read_text())["reference_values"]["snp"]
    assert set(refs) >= {"measurement", "min_tcb"}
    verdict = run("verify", report, "--certs", vcek, "--now", "2025-06-01", "--policy", policy)
    # go-sev-guest's report is a debug guest: the captured references match, and the captured
    # policy still refuses it, since capturing never turns debug_allowed on.
    assert "pass snp.measurement" in verdict.stdout
    assert "pass snp.min_tcb.microcode" in verdict.stdout
    assert verdict.returncode == 1
    assert "verdict: CONTRAINDICATED (refused by policy snp-b07af9620f3b: debug)" in \
        verdict.stdout
