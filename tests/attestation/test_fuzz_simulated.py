"""Property tests: the simulated parser, detect_tee and the policy loader fail only in their
typed way, and no mutation of signed simulated evidence verifies with different claims.

Example counts (6,100 in total) are fixed so the run stays a few seconds long.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.attestation.appraise import Policy, PolicyError, load_policy
from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.simulated import parse_simulated
from workbench.attestation.tee.simulated import SimulatedProvider, load_or_create_platform_key
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.simulated import verify_simulated

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("fuzz-home")
    evidence = SimulatedProvider(home=home, clock=lambda: NOW).evidence(bytes(range(64)))
    key = load_or_create_platform_key(home).public_key()
    original = verify_simulated(evidence, now=NOW, trusted_keys=[key])
    return evidence, key, original


# --- simulated parser ---------------------------------------------------------------------


@fuzz(1000)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        parse_simulated(data)
    except MalformedEvidence as err:
        assert str(err).startswith("simulated evidence: ")


@fuzz(600)
@given(json_values)
def test_arbitrary_json(value) -> None:
    with pytest.raises(MalformedEvidence):
        parse_simulated(json.dumps(value).encode())


def _check_mutation(mutated: bytes, signed) -> None:
    _, key, original = signed
    try:
        verified = verify_simulated(mutated, now=NOW, trusted_keys=[key])
    except (MalformedEvidence, EvidenceRejected):
        return
    # Only changes that leave the signed parts intact (JSON whitespace, key order) survive.
    assert verified.claims == original.claims
    assert verified.report_data == original.report_data


@fuzz(1200)
@given(st.data())
def test_mutated_envelopes(signed, data) -> None:
    evidence = bytearray(signed[0])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(evidence) - 1))
        action = data.draw(st.sampled_from(["flip", "set", "delete", "insert"]))
        if action == "flip":
            evidence[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "set":
            evidence[at] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del evidence[at]
        else:
            evidence.insert(at, data.draw(st.integers(0, 255)))
    _check_mutation(bytes(evidence), signed)


@fuzz(400)
@given(st.sampled_from(["type", "version", "simulated", "protected", "payload", "signature",
                        "extra"]), json_values)
def test_envelope_fields_replaced(signed, field: str, value) -> None:
    envelope = json.loads(signed[0])
    envelope[field] = value
    _check_mutation(json.dumps(envelope).encode(), signed)


# --- detect_tee ---------------------------------------------------------------------------


@fuzz(1200)
@given(st.one_of(
    st.binary(max_size=1300),
    st.binary(min_size=1184, max_size=1184),
    st.tuples(st.sampled_from([b"\x03\x00\x02\x00", b"\x04\x00\x02\x00", b"\x05\x00\x02\x00"]),
              st.binary(max_size=64)).map(b"".join),
))
def test_detect_arbitrary_bytes(data: bytes) -> None:
    try:
        tee = detect_tee(data)
    except MalformedEvidence as err:
        assert "evidence" in str(err) or "empty input" in str(err)
        return
    assert tee in {"sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "simulated"}
    if tee.startswith("az-"):
        # A bare HCL report, or a JSON object with an HCL report member.
        assert data[:4] == b"HCLA" or data.lstrip().startswith(b"{")
    if tee == "snp":
        assert len(data) == 1184
    if tee in {"sgx", "tdx"}:
        assert data[2:4] == b"\x02\x00"


@fuzz(300)
@given(st.sampled_from(["sgx/trustee-occlum-quote-v3.dat", "tdx/go-tdx-guest-quote-v4.dat",
                        "sev-snp/trustee-test-report.bin"]), st.integers(8, 2000),
       st.integers(0, 255))
def test_detect_ignores_bytes_after_the_header(vectors: Path, name: str, at: int,
                                               value: int) -> None:
    data = bytearray((vectors / name).read_bytes())
    expected = detect_tee(bytes(data))
    data[8 + at % (len(data) - 8)] = value
    assert detect_tee(bytes(data)) == expected


# --- policy loader ------------------------------------------------------------------------

HEX32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
HEX48 = st.binary(min_size=48, max_size=48).map(bytes.hex)


def _one_or_many(values):
    return values | st.lists(values, min_size=1, max_size=3)


valid_policies = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=30)},
    optional={
        "name": st.text(max_size=30),
        "allowed_tee": st.lists(st.sampled_from(["sgx", "tdx", "snp", "simulated"]),
                                min_size=1, max_size=4, unique=True),
        "debug_allowed": st.booleans(),
        "allow_simulation": st.booleans(),
        "max_evidence_age_s": st.integers(1, 31536000),
        "accepted_tcb_statuses": st.lists(
            st.sampled_from(["UpToDate", "SWHardeningNeeded", "OutOfDate", "Revoked"]),
            min_size=1, max_size=4, unique=True),
        "reference_values": st.fixed_dictionaries({}, optional={
            "sgx": st.fixed_dictionaries({}, optional={
                "mrenclave": _one_or_many(HEX32), "mrsigner": _one_or_many(HEX32),
                "isvprodid": _one_or_many(st.integers(0, 65535)),
                "min_isvsvn": st.integers(0, 65535)}),
            "tdx": st.fixed_dictionaries({}, optional={
                "mrtd": _one_or_many(HEX48), "rtmr3": _one_or_many(HEX48)}),
            "snp": st.fixed_dictionaries({}, optional={
                "measurement": _one_or_many(HEX48), "host_data": HEX32,
                "min_tcb": st.fixed_dictionaries({"snp": st.integers(0, 255)}),
                "policy": st.fixed_dictionaries({"debug": st.booleans()})}),
            "simulated": st.fixed_dictionaries({"measurement": HEX48}),
        }),
    },
)


@fuzz(400)
@given(valid_policies)
def test_valid_policies_load_and_round_trip(document: dict) -> None:
    policy = load_policy(document)
    assert isinstance(policy, Policy)
    assert load_policy(policy.to_json()) == policy


@fuzz(400)
@given(valid_policies, st.text(min_size=1, max_size=20), json_values)
def test_unknown_keys_are_named(document: dict, key: str, value) -> None:
    known = {"$schema", "id", "name", "allowed_tee", "reference_values", "debug_allowed",
             "accepted_tcb_statuses", "max_evidence_age_s", "allow_simulation"}
    if key in known:
        return
    with pytest.raises(PolicyError) as err:
        load_policy({**document, key: value})
    assert repr(key) in str(err.value)


@fuzz(600)
@given(st.one_of(json_values.filter(lambda v: not isinstance(v, str)), st.dictionaries(
    st.sampled_from(["id", "allowed_tee", "reference_values", "debug_allowed",
                     "max_evidence_age_s", "allow_simulation", "accepted_tcb_statuses"]),
    json_values, max_size=6)))
def test_arbitrary_documents(value) -> None:
    try:
        load_policy(value)
    except PolicyError as err:
        assert str(err).startswith("policy: ")
