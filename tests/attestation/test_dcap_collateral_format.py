"""Parsing Intel PCS responses (formats/intel_collateral.py): shapes and refusals."""

from __future__ import annotations

import json

import pytest

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.intel_collateral import (
    parse_enclave_identity,
    parse_tcb_info,
    signed_kind,
    top_level_members,
)

SIGNATURE = "ab" * 64


def _v2_level(svns: list[int], pce: int, status: str) -> dict:
    tcb = {f"sgxtcbcomp{i:02d}svn": s for i, s in enumerate(svns, start=1)}
    tcb["pcesvn"] = pce
    return {"tcb": tcb, "tcbDate": "2023-01-01T00:00:00Z", "tcbStatus": status}


def _v2_info(levels: list[dict]) -> dict:
    return {
        "version": 2,
        "issueDate": "2023-06-01T00:00:00Z",
        "nextUpdate": "2023-07-01T00:00:00Z",
        "fmspc": "00606A000000",
        "pceId": "0000",
        "tcbType": 0,
        "tcbEvaluationDataNumber": 15,
        "tcbLevels": levels,
    }


def _response(key: str, value: dict, signature: str = SIGNATURE) -> bytes:
    return json.dumps({key: value, "signature": signature}, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def tdx_tcb(vectors) -> bytes:
    return (vectors / "tdx/collateral/sample_tcbinfo_response_v5").read_bytes()


@pytest.fixture(scope="module")
def identity(vectors) -> bytes:
    return (vectors / "tdx/collateral/sample_qeIdentity_response").read_bytes()


def test_tcb_info_v2_is_sgx_and_sorted_highest_first():
    low = _v2_level([1] * 16, 5, "OutOfDate")
    high = _v2_level([2] * 16, 11, "UpToDate")
    info = parse_tcb_info(_response("tcbInfo", _v2_info([low, high])))
    assert info.id == "SGX" and info.version == 2
    assert [lv.status for lv in info.tcb_levels] == ["UpToDate", "OutOfDate"]
    assert info.tcb_levels[0].sgx_svns == (2,) * 16 and info.tcb_levels[0].tdx_svns is None
    assert info.fmspc == bytes.fromhex("00606a000000")  # hex read case-insensitively


def test_tdx_tcb_info_v3_with_module_identities(tdx_tcb):
    info = parse_tcb_info(tdx_tcb)
    raw = json.loads(tdx_tcb)["tcbInfo"]
    assert info.id == "TDX" and info.tdx_module is not None
    assert [m.id for m in info.tdx_module_identities] == [
        m["id"] for m in raw["tdxModuleIdentities"]
    ]
    assert all(lv.tdx_svns is not None for lv in info.tcb_levels)
    assert len(info.tcb_levels) == len(raw["tcbLevels"])


def test_enclave_identity(identity):
    parsed = parse_enclave_identity(identity)
    raw = json.loads(identity)["enclaveIdentity"]
    assert parsed.id == raw["id"] and parsed.isv_prod_id == raw["isvprodid"]
    assert parsed.mrsigner.hex() == raw["mrsigner"].lower()


def test_qe_identity_key_is_accepted(identity):
    renamed = identity.replace(b'{"enclaveIdentity":', b'{"qeIdentity":', 1)
    assert parse_enclave_identity(renamed).id == "TD_QE"
    assert signed_kind(renamed) == "enclaveIdentity"


def test_signed_body_keeps_whitespace_and_order():
    data = b'{ "tcbInfo" : {"b": 1,  "a": 2} , "signature": "00" }'
    members = top_level_members(data)
    assert members["tcbInfo"][1] == b'{"b": 1,  "a": 2}'


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda v: {**v, "version": 1}, "version 1 is not supported"),
        (lambda v: {k: x for k, x in v.items() if k != "fmspc"}, "missing 'fmspc'"),
        (lambda v: {**v, "fmspc": "00606A"}, "is 3 bytes, expected 6"),
        (lambda v: {**v, "fmspc": "zz606A000000"}, "not a hex string"),
        (lambda v: {**v, "issueDate": "yesterday"}, "not an ISO 8601 date"),
        (lambda v: {**v, "issueDate": "2023-06-01T00:00:00"}, "has no time zone"),
        (lambda v: {**v, "tcbType": True}, "not an integer"),
        (lambda v: {**v, "tcbLevels": {}}, "is not a list"),
        (lambda v: {**v, "tcbLevels": [{"tcb": {"pcesvn": 1}}]}, "missing 'sgxtcbcomp01svn'"),
    ],
)
def test_tcb_info_refusals(mutate, reason):
    value = mutate(_v2_info([_v2_level([1] * 16, 5, "OutOfDate")]))
    with pytest.raises(MalformedEvidence, match=reason):
        parse_tcb_info(_response("tcbInfo", value))


def test_tdx_tcb_info_needs_16_tdx_components(tdx_tcb):
    raw = json.loads(tdx_tcb)
    raw["tcbInfo"]["tcbLevels"][0]["tcb"]["tdxtcbcomponents"].pop()
    with pytest.raises(MalformedEvidence, match="has 15 entries, expected 16"):
        parse_tcb_info(json.dumps(raw).encode())


def test_tdx_tcb_info_needs_its_tdx_module(tdx_tcb):
    raw = json.loads(tdx_tcb)
    del raw["tcbInfo"]["tdxModule"]
    with pytest.raises(MalformedEvidence, match="missing 'tdxModule'"):
        parse_tcb_info(json.dumps(raw).encode())


def test_unknown_tcb_info_id(tdx_tcb):
    raw = json.loads(tdx_tcb)
    raw["tcbInfo"]["id"] = "SEV"
    with pytest.raises(MalformedEvidence, match="id 'SEV' is not SGX or TDX"):
        parse_tcb_info(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "expected '{'"),
        (b'{"tcbInfo": {}, "signature": "00"} trailing', "unexpected data after"),
        (b'{"tcbInfo": {"a": 1, "a": 2}, "signature": "00"}', "'a' appears twice"),
        (b'{"tcbInfo": {}}', "has no 'signature'"),
        (b'{"tcbInfo": {}, "signature": "00"}', "'signature' is 1 bytes, expected 64"),
        (b'{"tcbInfo": [], "signature": "00"}', "'tcbInfo' is not an object"),
        (b'{"tcbInfo": {}, "signature": "00", "extra": 1}', "unexpected top-level member"),
        (b'{"enclaveIdentity": {}, "signature": "00"}', "exactly one of tcbInfo"),
        (b'{"tcbInfo": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_response_shape_refusals(data, reason):
    with pytest.raises(MalformedEvidence, match=reason):
        parse_tcb_info(data)


def test_identity_version_1_is_refused(identity):
    raw = json.loads(identity)
    raw["enclaveIdentity"]["version"] = 1
    with pytest.raises(MalformedEvidence, match="enclave identity version 1 is not supported"):
        parse_enclave_identity(json.dumps(raw).encode())


def test_signed_kind_of_other_json():
    assert signed_kind(b'{"hello": 1}') is None
    assert signed_kind(b'{"tcbInfo": {}, "qeIdentity": {}}') is None
