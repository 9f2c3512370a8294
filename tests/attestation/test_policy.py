"""Policies are data: validated against the shipped schema; every mistake is named."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from workbench.attestation.appraise import Policy, PolicyError, load_policy
from workbench.attestation.appraise.policy import policy_schema
from workbench.errors import InputError

MRENCLAVE = "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
MEASUREMENT = "ab" * 48

FULL = {
    "id": "cohort-release-v1",
    "name": "Release cohort keys to the approved kernel",
    "allowed_tee": ["sgx", "tdx", "snp"],
    "reference_values": {
        "sgx": {"mrenclave": MRENCLAVE.upper(), "mrsigner": [MRENCLAVE], "isvprodid": 0,
                "min_isvsvn": 1},
        "tdx": {"mrtd": MEASUREMENT, "rtmr0": [MEASUREMENT, "cd" * 48], "mrconfigid": "00" * 48},
        "snp": {"measurement": MEASUREMENT, "host_data": "00" * 32,
                "min_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
                "policy": {"smt": True, "migrate_ma": False}},
        "simulated": {"measurement": MEASUREMENT},
    },
    "debug_allowed": False,
    "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
    "max_evidence_age_s": 120,
    "allow_simulation": False,
}


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def test_minimal_policy_has_fail_closed_defaults() -> None:
    policy = load_policy({"id": "p"})
    assert policy == Policy(id="p")
    assert policy.allow_simulation is False
    assert policy.debug_allowed is False
    assert policy.accepted_tcb_statuses == ("UpToDate",)
    assert policy.reference_values == {}
    assert policy.max_evidence_age_s == 300


def test_full_policy_is_normalised() -> None:
    policy = load_policy(FULL)
    sgx = policy.references("sgx")
    assert sgx["mrenclave"] == (MRENCLAVE,)  # lower-cased, single value -> tuple
    assert sgx["isvprodid"] == (0,)
    assert sgx["min_isvsvn"] == 1
    assert policy.references("tdx")["rtmr0"] == (MEASUREMENT, "cd" * 48)
    assert policy.references("snp")["min_tcb"]["snp"] == 8
    assert policy.references("snp")["policy"] == {"smt": True, "migrate_ma": False}
    assert policy.accepted_tcb_statuses == ("UpToDate", "SWHardeningNeeded")
    assert policy.references("nothing") == {}


def test_round_trip_through_json() -> None:
    policy = load_policy(FULL)
    assert load_policy(json.loads(json.dumps(policy.to_json()))) == policy


def test_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(FULL))
    assert load_policy(path) == load_policy(str(path)) == load_policy(FULL)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"id": "p", "alow_simulation": True},
         r"\(top level\): Additional properties are not allowed \('alow_simulation' was"),
        ({"id": "p", "reference_values": {"sgx": {"mrenclav": MRENCLAVE}}},
         r"reference_values/sgx: .*'mrenclav' was unexpected"),
        ({"id": "p", "reference_values": {"sev": {}}}, r"reference_values: .*'sev' was unexp"),
        ({"id": "p", "reference_values": {"snp": {"policy": {"debgu": False}}}},
         r"reference_values/snp/policy: .*'debgu' was unexpected"),
        ({"id": "p", "reference_values": {"snp": {"min_tcb": {"ucode": 1}}}},
         r"reference_values/snp/min_tcb: .*'ucode' was unexpected"),
        ({}, r"\(top level\): 'id' is a required property"),
        ({"id": ""}, r"id: '' should be non-empty"),
        ({"id": "p", "allow_simulation": "yes"}, r"allow_simulation: 'yes' is not of type"),
        ({"id": "p", "debug_allowed": 1}, r"debug_allowed: 1 is not of type 'boolean'"),
        ({"id": "p", "max_evidence_age_s": 0}, r"max_evidence_age_s: 0 is less than the min"),
        ({"id": "p", "max_evidence_age_s": True}, r"max_evidence_age_s: True is not of type"),
        ({"id": "p", "accepted_tcb_statuses": ["Fine"]},
         r"accepted_tcb_statuses/0: 'Fine' is not one of"),
        ({"id": "p", "allowed_tee": []}, r"allowed_tee: \[\] should be non-empty"),
        ({"id": "p", "allowed_tee": ["sev"]}, r"allowed_tee/0: 'sev' is not one of"),
        ({"id": "p", "reference_values": {"sgx": {"mrenclave": "zz"}}},
         r"reference_values/sgx/mrenclave: 'zz' does not match"),
        ({"id": "p", "reference_values": {"tdx": {"mrtd": MRENCLAVE}}},
         r"reference_values/tdx/mrtd: '8f17.*' does not match"),
        ({"id": "p", "reference_values": {"sgx": {"isvprodid": 70000}}},
         r"reference_values/sgx/isvprodid: 70000 is greater than the maximum"),
        ({"id": "p", "reference_values": {"snp": {"min_tcb": {"snp": -1}}}},
         r"reference_values/snp/min_tcb/snp: -1 is less than the minimum"),
    ],
)
def test_invalid_policies_name_the_problem(document: dict, reason: str) -> None:
    with pytest.raises(PolicyError, match=reason):
        load_policy(document)


def test_policy_errors_are_input_errors() -> None:
    with pytest.raises(InputError) as err:
        load_policy({"id": "p", "x": 1})
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{", "policy is not valid JSON"),
        (b"\xff", "policy is not valid JSON"),
        (b'{"id": "a", "id": "b"}', "duplicate key 'id'"),
        (b"[]", "a policy must be a JSON object"),
        (b" " * (1024 * 1024 + 1), "policy is larger than"),
    ],
)
def test_unusable_policy_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(content)
    with pytest.raises(PolicyError, match=reason) as err:
        load_policy(path)
    assert str(err.value).startswith(str(path))


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.json")
