"""One claims declaration per TEE (verify.claims): the generated TypeScript copy is current and
every consumer (broker, kernel report, appraisal rules) reads the same table."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workbench.attestation.appraise import appraise, load_policy
from workbench.attestation.appraise.policy import (
    SNP_POLICY_ALIASES,
    TEE_TYPES,
    PolicyError,
    policy_schema,
)
from workbench.attestation.appraise.rules import RULES
from workbench.attestation.formats import strict_json
from workbench.attestation.formats.snp_offsets import POLICY_FLAGS
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.claims import ROLES, TEE_CLAIMS, TS_PATH, typescript
from workbench.attestation.verify.result import VerifiedEvidence
from workbench.kbs.evidence import identity
from workbench.kernel.report import AttestationReport

ROOT = Path(__file__).parents[2]
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_generated_typescript_is_current() -> None:
    committed = (ROOT / TS_PATH).read_text("utf-8")
    assert committed == typescript(), (
        f"{TS_PATH} differs from workbench/attestation/verify/claims.py; regenerate it with "
        f"`python -m workbench.attestation.verify.claims > {TS_PATH}`")


def test_module_entry_prints_the_typescript() -> None:
    printed = subprocess.run([sys.executable, "-m", "workbench.attestation.verify.claims"],
                             check=True, capture_output=True, text=True).stdout
    assert printed == typescript()


def test_every_policy_tee_is_declared() -> None:
    assert set(TEE_CLAIMS) == set(TEE_TYPES)
    for tee, declared in TEE_CLAIMS.items():
        assert declared.tee == tee
        assert declared.measurement in declared.identifying
        assert set(declared.pin_one_of) <= set(declared.identifying)


@pytest.fixture
def simulated() -> VerifiedEvidence:
    provider = SimulatedProvider(clock=lambda: NOW - timedelta(seconds=10))
    return verify_evidence(provider.evidence(bytes(64)), now=NOW)


def test_broker_identity_lists_the_declared_claims(simulated: VerifiedEvidence) -> None:
    found = identity(simulated)
    assert list(found) == ["tee", "simulated", *TEE_CLAIMS["simulated"].identifying]
    assert found["tee"] == "simulated" and found["simulated"] is True


def test_broker_identity_of_an_unknown_tee_names_only_the_tee() -> None:
    evidence = VerifiedEvidence(tee="other", claims={"measurement": "00"}, report_data=b"",
                                checks=())
    assert identity(evidence) == {"tee": "other", "simulated": False}


def _report(tee: str, claims: dict) -> AttestationReport:
    annotated = {"tee": tee, "claims": claims}
    return AttestationReport(
        runtime="test", broker="http://127.0.0.1", token="", evidence=b"", nonce="n",
        claims={"submods": {"kernel": {"ear.status": "affirming",
                                       "ear.veraison.annotated-evidence": annotated}}},
        nonce_issued_at=NOW, tee_pubkey={})


@pytest.mark.parametrize("tee", sorted(TEE_CLAIMS))
def test_kernel_report_identity_reads_the_declaration(tee: str) -> None:
    declared = TEE_CLAIMS[tee]
    claims = {declared.role(what): f"value of {what}" for what in ROLES}
    report = _report(tee, claims)
    for what in ROLES:
        assert report.identity(what) == claims[declared.role(what)]
    assert report.identity("unknown") is None
    assert _report("other", claims).identity("measurement") is None


@pytest.mark.parametrize("tee", sorted(TEE_CLAIMS))
def test_reference_rule_asks_for_the_declared_claims(tee: str) -> None:
    evidence = VerifiedEvidence(tee=tee, claims={"debug": False}, report_data=b"", checks=())
    result = appraise(evidence, load_policy({"id": "p", "allow_simulation": True}), now=NOW)
    rule = next(r for r in result.rules if r.name == "reference-values")
    assert not rule.passed
    declared = TEE_CLAIMS[tee]
    also = f", with {', '.join(declared.pin_also)}" if declared.pin_also else ""
    assert rule.expected == f"one of {', '.join(declared.pin_one_of)} for {tee}{also}"


# --- SEV-SNP guest policy bits: one table, with the old name as an alias --------------------


def test_snp_policy_rules_and_schema_come_from_the_one_table() -> None:
    rules = {r.name for r in RULES if r.name.startswith("snp.policy.")}
    assert rules == {f"snp.policy.{name}" for name in POLICY_FLAGS}
    snp = policy_schema()["properties"]["reference_values"]["properties"]["snp"]
    assert set(snp["properties"]["policy"]["properties"]) == {*POLICY_FLAGS, *SNP_POLICY_ALIASES}
    assert set(SNP_POLICY_ALIASES.values()) <= set(POLICY_FLAGS)


def _snp_with_flags(**flags: bool) -> VerifiedEvidence:
    return VerifiedEvidence(tee="snp", report_data=b"", checks=(), claims={
        "measurement": "00" * 48, "debug": False,
        "policy_flags": {name: flags.get(name, False) for name in POLICY_FLAGS}})


@pytest.mark.parametrize("key", ["ciphertext_hiding", "ciphertext_hiding_dram"])
def test_old_and_spec_names_of_bit_24_mean_the_same(key: str) -> None:
    policy = load_policy({"id": "p", "reference_values": {"snp": {
        "measurement": "00" * 48, "policy": {key: True}}}})
    assert policy.references("snp")["policy"] == {"ciphertext_hiding_dram": True}
    rule_name = "snp.policy.ciphertext_hiding_dram"
    passed = appraise(_snp_with_flags(ciphertext_hiding_dram=True), policy, now=NOW)
    assert next(r for r in passed.rules if r.name == rule_name).passed
    failed = appraise(_snp_with_flags(), policy, now=NOW)
    assert [r.name for r in failed.failed_rules] == [rule_name]


def test_alias_and_spec_name_together_are_refused() -> None:
    with pytest.raises(PolicyError, match="name the same guest policy bit"):
        load_policy({"id": "p", "reference_values": {"snp": {
            "measurement": "00" * 48,
            "policy": {"ciphertext_hiding": True, "ciphertext_hiding_dram": True}}}})


def test_policy_bit_rules_read_the_decoded_flags_not_the_integer() -> None:
    policy = load_policy({"id": "p", "reference_values": {"snp": {
        "measurement": "00" * 48, "policy": {"smt": True}}}})
    result = appraise(_snp_with_flags(smt=True), policy, now=NOW)
    assert next(r for r in result.rules if r.name == "snp.policy.smt").passed


# --- strict JSON ---------------------------------------------------------------------------


def test_strict_json_refuses_duplicate_keys_with_the_callers_error() -> None:
    with pytest.raises(strict_json.DuplicateKey, match="duplicate key 'a'") as caught:
        strict_json.loads('{"b": {"a": 1, "a": 2}}')
    assert isinstance(caught.value, ValueError) and caught.value.key == "a"
    with pytest.raises(KeyError):
        strict_json.loads('{"a": 1, "a": 2}', on_duplicate=KeyError)
    assert strict_json.loads('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}


def test_decoded_flags_are_what_verify_emits(vectors: Path) -> None:
    from workbench.attestation.verify.snp import verify_report

    report = (vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes()
    vcek = (vectors / "sev-snp/go-sev-guest-vcek.der").read_bytes()
    evidence = verify_report(report, now=datetime(2025, 6, 1, tzinfo=UTC), certs=[vcek])
    snp = TEE_CLAIMS["snp"]
    assert snp.decoded("policy_flags") == tuple(POLICY_FLAGS)
    for claim, names in snp.flags:
        decoded = evidence.claims[claim]
        assert all(isinstance(decoded[name], bool) for name in names), claim
    assert snp.decoded("no_such_claim") == ()
    # The Azure vTPM declarations add vm_configuration (tests/attestation/test_azure_verify.py
    # checks those against what verify emits); no other TEE decodes bit fields.
    with_flags = {"snp", "az-snp-vtpm", "az-tdx-vtpm"}
    assert all(not c.flags for tee, c in TEE_CLAIMS.items() if tee not in with_flags)
