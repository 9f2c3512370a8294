"""Appraisal: every rule runs and reports expected, actual and why; the verdict follows."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK

from workbench.attestation.appraise import EarStatus, PolicyError, appraise, load_policy
from workbench.attestation.appraise.reference import policy_from_evidence
from workbench.attestation.appraise.rules import RULES
from workbench.attestation.formats.snp_offsets import POLICY_FLAGS as SNP_POLICY_BITS
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence
from workbench.attestation.verify.result import Check, VerifiedEvidence

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SESSION_KEY = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
BINDING = report_data_for("nonce-1", SESSION_KEY)


def _rule(appraisal, name):
    matches = [r for r in appraisal.rules if r.name == name]
    assert matches, f"rule {name} missing from {[r.name for r in appraisal.rules]}"
    return matches[0]


# --- simulated evidence --------------------------------------------------------------------


@pytest.fixture
def provider() -> SimulatedProvider:
    return SimulatedProvider(clock=lambda: NOW - timedelta(seconds=10))


@pytest.fixture
def simulated(provider: SimulatedProvider) -> VerifiedEvidence:
    return verify_evidence(provider.evidence(BINDING), now=NOW)


def _simulation_policy(provider: SimulatedProvider, **extra) -> dict:
    return {
        "id": "sim",
        "allow_simulation": True,
        "reference_values": {"simulated": {"measurement": provider.measurement().measurement}},
        **extra,
    }


def test_simulated_evidence_accepted_with_a_warning(provider, simulated) -> None:
    policy = load_policy(_simulation_policy(provider))
    result = appraise(simulated, policy, now=NOW, expected_report_data=BINDING)
    assert result.passed
    assert result.status is EarStatus.WARNING
    assert _rule(result, "simulation").warning
    assert "not hardware-protected" in _rule(result, "simulation").reason
    assert result.trust_vector["hardware"] == 32
    assert result.trust_vector["executables"] == 2
    assert result.trust_vector["instance-identity"] == 2
    assert result.simulated and result.tee == "simulated"


def test_simulation_refused_by_default(provider, simulated) -> None:
    policy = load_policy({**_simulation_policy(provider), "allow_simulation": False})
    result = appraise(simulated, policy, now=NOW)
    rule = _rule(result, "simulation")
    assert not rule.passed
    assert "simulated evidence is refused: the policy does not set allow_simulation" in rule.reason
    assert result.status is EarStatus.CONTRAINDICATED
    assert result.trust_vector["hardware"] == 97


def test_every_failing_rule_is_reported(simulated) -> None:
    """Wrong measurement, wrong binding, stale and simulation refused: all four reported."""
    policy = load_policy({"id": "strict", "max_evidence_age_s": 5,
                          "reference_values": {"simulated": {"measurement": "00" * 48}}})
    result = appraise(simulated, policy, now=NOW, expected_report_data=bytes(64))
    failed = {r.name for r in result.failed_rules}
    assert failed == {"simulation", "simulated.measurement", "report-data", "freshness"}
    assert _rule(result, "tee-allowed").passed
    assert not result.passed and result.status is EarStatus.CONTRAINDICATED


def test_tee_not_allowed(provider, simulated) -> None:
    policy = load_policy(_simulation_policy(provider, allowed_tee=["tdx", "snp"]))
    rule = _rule(appraise(simulated, policy, now=NOW), "tee-allowed")
    assert not rule.passed
    assert rule.reason == "TEE type 'simulated' is not allowed by policy (allowed: tdx, snp)"
    assert rule.expected == ["tdx", "snp"] and rule.actual == "simulated"


def test_measurement_mismatch(provider, simulated) -> None:
    policy = load_policy({**_simulation_policy(provider),
                          "reference_values": {"simulated": {"measurement": ["11" * 48]}}})
    result = appraise(simulated, policy, now=NOW)
    rule = _rule(result, "simulated.measurement")
    assert not rule.passed
    assert "is not a reference value of the policy" in rule.reason
    assert rule.actual == provider.measurement().measurement
    assert result.trust_vector["executables"] == 33


def test_no_reference_measurement_means_no_pass(simulated) -> None:
    result = appraise(simulated, load_policy({"id": "p", "allow_simulation": True}), now=NOW)
    rule = _rule(result, "reference-values")
    assert not rule.passed
    assert rule.reason == ("policy has no reference measurement for simulated: any code would "
                           "pass, so none does")


def test_report_data_mismatch(provider, simulated) -> None:
    other = report_data_for("nonce-2", SESSION_KEY)
    result = appraise(simulated, load_policy(_simulation_policy(provider)), now=NOW,
                      expected_report_data=other)
    rule = _rule(result, "report-data")
    assert not rule.passed
    assert "report data does not match this session's nonce and key" in rule.reason
    assert rule.expected == other.hex() and rule.actual == BINDING.hex()
    assert result.trust_vector["instance-identity"] == 96


def test_no_binding_rule_without_expected_report_data(provider, simulated) -> None:
    result = appraise(simulated, load_policy(_simulation_policy(provider)), now=NOW)
    assert "report-data" not in {r.name for r in result.rules}


def test_stale_evidence(provider, simulated) -> None:
    policy = load_policy(_simulation_policy(provider, max_evidence_age_s=60))
    later = NOW + timedelta(minutes=5)
    rule = _rule(appraise(simulated, policy, now=later), "freshness")
    assert not rule.passed
    assert rule.reason == "evidence is 310 s old; the policy accepts at most 60 s"


def test_evidence_from_the_future(provider, simulated) -> None:
    earlier = NOW - timedelta(minutes=10)
    rule = _rule(appraise(simulated, load_policy(_simulation_policy(provider)), now=earlier),
                 "freshness")
    assert not rule.passed
    assert "evidence is dated 590 s in the future" in rule.reason


def test_small_clock_skew_is_tolerated(provider, simulated) -> None:
    slightly_early = NOW - timedelta(seconds=40)
    rule = _rule(appraise(simulated, load_policy(_simulation_policy(provider)),
                          now=slightly_early), "freshness")
    assert rule.passed


def test_naive_now_is_refused(simulated) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        appraise(simulated, load_policy({"id": "p"}), now=datetime(2025, 1, 1))


def test_appraisal_json_is_serialisable(provider, simulated) -> None:
    result = appraise(simulated, load_policy(_simulation_policy(provider)), now=NOW)
    document = json.loads(json.dumps(result.to_json()))
    assert document["status"] == "warning" and document["passed"] is True
    assert {r["name"] for r in document["rules"]} == {r.name for r in result.rules}


# --- SEV-SNP, real reports -------------------------------------------------------------


@pytest.fixture(scope="module")
def snp_debug(vectors: Path) -> VerifiedEvidence:
    """go-sev-guest's report: guest policy has DEBUG (bit 19) set."""
    return verify_evidence(
        (vectors / "sev-snp/go-sev-guest-attestation.bin").read_bytes(), now=NOW,
        certs=[(vectors / "sev-snp/go-sev-guest-vcek.der").read_bytes()])


@pytest.fixture(scope="module")
def snp(vectors: Path) -> VerifiedEvidence:
    return verify_evidence(
        (vectors / "sev-snp/trustee-test-report.bin").read_bytes(), now=NOW,
        certs=[(vectors / "sev-snp/trustee-test-vcek.der").read_bytes()])


def _snp_policy(evidence: VerifiedEvidence, **refs) -> dict:
    return {"id": "snp", "reference_values": {"snp": {
        "measurement": evidence.claims["measurement"], **refs}}}


def test_snp_report_matching_its_references_is_affirmed(snp) -> None:
    reported = snp.claims["reported_tcb"]
    policy = load_policy(_snp_policy(
        snp, host_data=snp.claims["host_data"], min_tcb=reported,
        policy={"smt": bool(snp.claims["policy"] >> 16 & 1), "debug": False}))
    result = appraise(snp, policy, now=NOW)
    assert result.passed, [r for r in result.rules if not r.passed]
    assert result.status is EarStatus.AFFIRMING
    names = {r.name for r in result.rules}
    assert {"verified", "snp.measurement", "snp.host_data", "snp.policy.smt",
            "snp.policy.debug"} <= names
    assert {f"snp.min_tcb.{c}" for c in reported} <= names
    assert "tcb-status" not in names  # no collateral status for SNP; min_tcb judges the TCB
    assert result.trust_vector["hardware"] == 2
    assert result.trust_vector["runtime-opaque"] == 2


def test_snp_debug_guest_refused(snp_debug) -> None:
    result = appraise(snp_debug, load_policy(_snp_policy(snp_debug)), now=NOW)
    rule = _rule(result, "debug")
    assert not rule.passed and rule.actual is True
    assert "debug mode is on: the host can read the TEE's memory" in rule.reason
    assert result.trust_vector["configuration"] == 96


def test_snp_debug_guest_allowed_with_warning(snp_debug) -> None:
    policy = load_policy({**_snp_policy(snp_debug), "debug_allowed": True})
    result = appraise(snp_debug, policy, now=NOW)
    assert result.passed and result.status is EarStatus.WARNING
    assert "which the policy allows" in _rule(result, "debug").reason


def test_snp_tcb_below_minimum(snp) -> None:
    reported = snp.claims["reported_tcb"]
    policy = load_policy(_snp_policy(snp, min_tcb={"snp": reported["snp"] + 1}))
    rule = _rule(appraise(snp, policy, now=NOW), "snp.min_tcb.snp")
    assert not rule.passed
    assert rule.reason == (f"reported TCB snp SVN {reported['snp']} is below the policy "
                           f"minimum {reported['snp'] + 1}")


def test_snp_tcb_component_absent(snp) -> None:
    assert "fmc" not in snp.claims["reported_tcb"]  # Milan has no FMC component
    rule = _rule(appraise(snp, load_policy(_snp_policy(snp, min_tcb={"fmc": 0})), now=NOW),
                 "snp.min_tcb.fmc")
    assert not rule.passed and rule.reason == "reported TCB has no 'fmc' component"


def test_snp_policy_bit_mismatch(snp) -> None:
    smt = bool(snp.claims["policy"] >> SNP_POLICY_BITS["smt"] & 1)
    rule = _rule(appraise(snp, load_policy(_snp_policy(snp, policy={"smt": not smt})),
                          now=NOW), "snp.policy.smt")
    assert not rule.passed
    state = "set" if smt else "clear"
    assert rule.reason.startswith(f"guest policy bit smt is {state}; the policy requires")


def test_snp_measurement_and_host_data_mismatch(snp) -> None:
    policy = load_policy({"id": "p", "reference_values": {"snp": {
        "measurement": "00" * 48, "host_data": "ff" * 32}}})
    result = appraise(snp, policy, now=NOW)
    assert {r.name for r in result.failed_rules} == {"snp.measurement", "snp.host_data"}
    assert "host_data 0000" in _rule(result, "snp.host_data").reason


# --- SGX and TDX claims (rules exercised on the verifier's claim names) ------------------


def _dcap_evidence(tee: str, claims: dict, tcb_status: str | None = "UpToDate",
                   advisories: tuple[str, ...] = ()) -> VerifiedEvidence:
    return VerifiedEvidence(tee=tee, claims=claims, report_data=bytes(64),
                            checks=(Check("quote-signature", True),), tcb_status=tcb_status,
                            advisory_ids=advisories)


SGX = {"mrenclave": "aa" * 32, "mrsigner": "bb" * 32, "isvprodid": 1, "isvsvn": 3,
       "debug": False}
TDX = {"mrtd": "11" * 48, "rtmr0": "22" * 48, "rtmr1": "33" * 48, "rtmr2": "44" * 48,
       "rtmr3": "55" * 48, "mrconfigid": "00" * 48, "debug": False}
# What a TDX policy must pin: the firmware (MRTD), the kernel (RTMR1), its command line and
# initrd (RTMR2).
TDX_PINS = {"mrtd": "11" * 48, "rtmr1": "33" * 48, "rtmr2": "44" * 48}


def test_sgx_rules() -> None:
    policy = load_policy({"id": "p", "reference_values": {"sgx": {
        "mrenclave": "AA" * 32, "mrsigner": "bb" * 32, "isvprodid": [1, 2], "min_isvsvn": 3}}})
    result = appraise(_dcap_evidence("sgx", SGX), policy, now=NOW)
    assert result.status is EarStatus.AFFIRMING, result.failed_rules
    low = appraise(_dcap_evidence("sgx", {**SGX, "isvsvn": 2, "isvprodid": 5}), policy, now=NOW)
    assert {r.name for r in low.failed_rules} == {"sgx.min_isvsvn", "sgx.isvprodid"}
    assert _rule(low, "sgx.min_isvsvn").reason == "isvsvn 2 is below the policy minimum 3"
    assert _rule(low, "sgx.isvprodid").reason == (
        "isvprodid 5 is not a reference value of the policy"
    )


def test_sgx_claim_missing_is_a_failure() -> None:
    claims = {k: v for k, v in SGX.items() if k not in ("mrsigner", "isvsvn")}
    policy = load_policy({"id": "p", "reference_values": {"sgx": {
        "mrsigner": "bb" * 32, "min_isvsvn": 1}}})
    result = appraise(_dcap_evidence("sgx", claims), policy, now=NOW)
    assert _rule(result, "sgx.mrsigner").reason == "evidence has no 'mrsigner' claim"
    assert _rule(result, "sgx.min_isvsvn").reason == "evidence has no integer 'isvsvn' claim"


def test_tdx_rules_each_register() -> None:
    refs = {k: v for k, v in TDX.items() if k != "debug"}
    result = appraise(_dcap_evidence("tdx", TDX),
                      load_policy({"id": "p", "reference_values": {"tdx": refs}}), now=NOW)
    assert result.passed
    for name in refs:
        changed = {**TDX, name: "99" * 48}
        failed = appraise(_dcap_evidence("tdx", changed),
                          load_policy({"id": "p", "reference_values": {"tdx": refs}}), now=NOW)
        assert [r.name for r in failed.failed_rules] == [f"tdx.{name}"]


def test_tcb_status_not_accepted_names_advisories() -> None:
    evidence = _dcap_evidence("sgx", SGX, "OutOfDate", ("INTEL-SA-00586",))
    policy = load_policy({"id": "p", "reference_values": {"sgx": {"mrenclave": "aa" * 32}}})
    rule = _rule(appraise(evidence, policy, now=NOW), "tcb-status")
    assert not rule.passed
    assert rule.reason == ("TCB status OutOfDate is not accepted by policy (accepted: UpToDate)"
                           " (advisories: INTEL-SA-00586)")


def test_tcb_status_accepted_but_not_up_to_date_warns() -> None:
    evidence = _dcap_evidence("tdx", TDX, "SWHardeningNeeded")
    policy = load_policy({"id": "p", "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
                          "reference_values": {"tdx": TDX_PINS}})
    result = appraise(evidence, policy, now=NOW)
    assert result.passed and result.status is EarStatus.WARNING
    assert result.trust_vector["hardware"] == 32


def test_tcb_status_unknown_without_collateral() -> None:
    evidence = _dcap_evidence("tdx", TDX, None)
    policy = load_policy({"id": "p", "reference_values": {"tdx": TDX_PINS}})
    rule = _rule(appraise(evidence, policy, now=NOW), "tcb-status")
    assert not rule.passed
    assert rule.reason == "TCB status unknown: no collateral was supplied (use --collateral)"


def test_debug_claim_missing_is_a_failure() -> None:
    claims = {k: v for k, v in TDX.items() if k != "debug"}
    policy = load_policy({"id": "p", "reference_values": {"tdx": TDX_PINS}})
    rule = _rule(appraise(_dcap_evidence("tdx", claims), policy, now=NOW), "debug")
    assert not rule.passed
    assert rule.reason == "evidence does not say whether debug mode is on"


def test_quote_without_time_has_no_freshness_rule() -> None:
    policy = load_policy({"id": "p", "reference_values": {"tdx": TDX_PINS}})
    result = appraise(_dcap_evidence("tdx", TDX), policy, now=NOW)
    assert "freshness" not in {r.name for r in result.rules}


def test_rule_table_names_are_unique() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))


# --- TDX, a real quote with real collateral ------------------------------------------------


@pytest.fixture(scope="module")
def tdx_up_to_date(vectors: Path) -> VerifiedEvidence:
    from workbench.attestation.verify.collateral import load_collateral_dir

    return verify_evidence((vectors / "tdx/trustee-quote-v4.dat").read_bytes(),
                           now=datetime(2023, 6, 20, tzinfo=UTC),
                           collateral=load_collateral_dir(vectors / "tdx/collateral"))


def _pinning(evidence: VerifiedEvidence, **extra) -> dict:
    claims = evidence.claims
    return {"id": "tdx", "allowed_tee": ["tdx"], "reference_values": {"tdx": {
        "mrtd": claims["mrtd"], "rtmr0": claims["rtmr0"], "rtmr1": claims["rtmr1"],
        "rtmr2": claims["rtmr2"], "mrconfigid": claims["mrconfigid"]}},
        **extra}


def test_real_debug_td_refused_by_a_policy_pinning_it(tdx_up_to_date) -> None:
    """Trustee's sample TD runs with TD attributes bit 0 (DEBUG) set."""
    assert tdx_up_to_date.claims["debug"] is True
    result = appraise(tdx_up_to_date, load_policy(_pinning(tdx_up_to_date)),
                      now=datetime(2023, 6, 20, tzinfo=UTC),
                      expected_report_data=tdx_up_to_date.report_data)
    assert [r.name for r in result.failed_rules] == ["debug"]
    assert _rule(result, "tcb-status").reason == "TCB status UpToDate is accepted"
    assert result.trust_vector == {"instance-identity": 2, "configuration": 96, "executables": 2,
                                   "file-system": 0, "hardware": 2, "runtime-opaque": 2,
                                   "storage-opaque": 0, "sourced-data": 0}


def test_real_debug_td_accepted_with_warning_when_debug_allowed(tdx_up_to_date) -> None:
    policy = load_policy(_pinning(tdx_up_to_date, debug_allowed=True))
    result = appraise(tdx_up_to_date, policy, now=datetime(2023, 6, 20, tzinfo=UTC))
    assert result.passed and result.status is EarStatus.WARNING


def test_real_tdx_quote_with_other_mrtd_refused(tdx_up_to_date) -> None:
    claims = tdx_up_to_date.claims
    policy = load_policy({"id": "tdx", "reference_values": {"tdx": {
        "mrtd": "00" * 48, "rtmr1": claims["rtmr1"], "rtmr2": claims["rtmr2"]}}})
    result = appraise(tdx_up_to_date, policy, now=NOW)
    assert [r.name for r in result.failed_rules] == ["debug", "tdx.mrtd"]
    assert result.status is EarStatus.CONTRAINDICATED


def test_tdx_policy_pinning_mrtd_alone_is_refused() -> None:
    # MRTD is the TD firmware: a stock TDVF booting the operator's own kernel has the same.
    policy = load_policy({"id": "p", "reference_values": {"tdx": {"mrtd": "11" * 48}}})
    rule = _rule(appraise(_dcap_evidence("tdx", TDX), policy, now=NOW), "reference-values")
    assert not rule.passed
    assert rule.expected == "one of mrtd for tdx, with rtmr1, rtmr2"
    assert rule.reason == ("policy pins mrtd for tdx but not rtmr1, rtmr2: mrtd alone leaves "
                           "out code that rtmr1, rtmr2 measure, so any would pass and none does")
    pinned = load_policy({"id": "p", "reference_values": {"tdx": TDX_PINS}})
    rule = _rule(appraise(_dcap_evidence("tdx", TDX), pinned, now=NOW), "reference-values")
    assert rule.passed and rule.reason == "policy pins mrtd, rtmr1, rtmr2 for tdx"


def test_policy_captured_from_a_real_td_refuses_another_kernel(tdx_up_to_date) -> None:
    # policy init --from-evidence used to write MRTD alone, which any guest OS matched.
    document = policy_from_evidence(tdx_up_to_date, policy_id="this-td")
    assert set(document["reference_values"]["tdx"]) == {"mrtd", "rtmr1", "rtmr2"}
    policy = load_policy({**document, "debug_allowed": True})
    assert appraise(tdx_up_to_date, policy, now=datetime(2023, 6, 20, tzinfo=UTC)).passed
    other_kernel = dataclasses.replace(tdx_up_to_date, claims={
        **tdx_up_to_date.claims, "rtmr1": "ab" * 48, "rtmr2": "cd" * 48})
    result = appraise(other_kernel, policy, now=datetime(2023, 6, 20, tzinfo=UTC))
    assert [r.name for r in result.failed_rules] == ["tdx.rtmr1", "tdx.rtmr2"]


def test_snp_policy_rule_without_policy_claim() -> None:
    evidence = VerifiedEvidence(tee="snp", claims={"measurement": "00" * 48, "debug": False},
                                report_data=bytes(64), checks=())
    policy = load_policy({"id": "p", "reference_values": {"snp": {
        "measurement": "00" * 48, "policy": {"smt": True}, "min_tcb": {"snp": 1}}}})
    result = appraise(evidence, policy, now=NOW)
    assert _rule(result, "snp.policy.smt").reason == "evidence has no integer 'policy' claim"
    assert _rule(result, "snp.min_tcb.snp").reason == "reported TCB has no 'snp' component"


def _vlek_report(vectors: Path) -> VerifiedEvidence:
    """trustee's VLEK-signed report, requested at VMPL 1."""
    return verify_evidence((vectors / "sev-snp/trustee-vlek-report.bin").read_bytes(),
                           certs=[(vectors / "sev-snp/trustee-vlek.der").read_bytes()],
                           now=datetime(2025, 6, 1, tzinfo=UTC))


def test_snp_policy_can_require_the_vmpl_the_report_was_requested_at(vectors: Path) -> None:
    # Under an SVSM or paravisor a less privileged VMPL can ask for a report binding its own
    # data; before, no policy could say which VMPL it accepts.
    evidence = _vlek_report(vectors)
    assert evidence.claims["vmpl"] == 1
    pins = {"measurement": evidence.claims["measurement"]}
    vmpl0 = load_policy({"id": "p", "reference_values": {"snp": {**pins, "vmpl": 0}}})
    rule = _rule(appraise(evidence, vmpl0, now=datetime(2025, 6, 1, tzinfo=UTC)), "snp.vmpl")
    assert not rule.passed and rule.expected == [0] and rule.actual == 1
    assert rule.reason == "vmpl 1 is not a reference value of the policy"
    either = load_policy({"id": "p", "reference_values": {"snp": {**pins, "vmpl": [0, 1]}}})
    rule = _rule(appraise(evidence, either, now=datetime(2025, 6, 1, tzinfo=UTC)), "snp.vmpl")
    assert rule.passed and rule.reason == "vmpl matches the reference value"
    assert policy_from_evidence(evidence, policy_id="p")["reference_values"]["snp"]["vmpl"] == 1


@pytest.mark.parametrize("vmpl", [4, -1, "0", [], [0, 7]])
def test_snp_vmpl_reference_outside_0_to_3_is_refused(vmpl) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy({"id": "p", "reference_values": {"snp": {"vmpl": vmpl}}})
    assert "reference_values/snp/vmpl" in str(info.value)
