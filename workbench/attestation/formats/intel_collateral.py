"""Intel PCS collateral as typed values: TCB info (v2, v3) and enclave (QE) identity (v2).

A PCS response is ``{"tcbInfo": {...}, "signature": "<hex r||s>"}`` (or ``enclaveIdentity``
/ the older key ``qeIdentity``). Intel signs the exact bytes of the inner object as they
appear in the response, so the parser keeps that byte span (``signed_body``) and never
re-serialises. Duplicate keys anywhere are refused: with two ``tcbInfo`` members a reader
and a signature checker could look at different ones. No cryptography here; errors are
:class:`MalformedEvidence`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.attestation.formats import strict_json
from workbench.attestation.formats.errors import MalformedEvidence

TCB_INFO_KEY = "tcbInfo"
IDENTITY_KEYS = ("enclaveIdentity", "qeIdentity")
SIGNED_KEYS = (TCB_INFO_KEY, *IDENTITY_KEYS)
SIGNATURE_KEY = "signature"

TCB_INFO_VERSIONS = (2, 3)
TCB_INFO_IDS = ("SGX", "TDX")
IDENTITY_VERSIONS = (2,)
COMPONENT_COUNT = 16

# Sizes in bytes of the hex fields, as Intel's PCS API specification gives them.
TCB_INFO_HEX_SIZES = {"fmspc": 6, "pceId": 2}
TDX_MODULE_HEX_SIZES = {"mrsigner": 48, "attributes": 8, "attributesMask": 8}
IDENTITY_HEX_SIZES = {
    "miscselect": 4,
    "miscselectMask": 4,
    "attributes": 16,
    "attributesMask": 16,
    "mrsigner": 32,
}
# TCB info v2 names the 16 SGX components as separate members.
V2_COMPONENT_KEYS = tuple(f"sgxtcbcomp{i:02d}svn" for i in range(1, COMPONENT_COUNT + 1))

_WHITESPACE = " \t\n\r"


@dataclass(frozen=True)
class TcbLevel:
    sgx_svns: tuple[int, ...]
    pce_svn: int
    tdx_svns: tuple[int, ...] | None
    tcb_date: datetime | None
    status: str
    advisory_ids: tuple[str, ...]

    def sort_key(self) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
        return (self.sgx_svns, self.pce_svn, self.tdx_svns or ())


@dataclass(frozen=True)
class IsvTcbLevel:
    """A level keyed by one ISV SVN: QE identity levels and TDX module identity levels."""

    isv_svn: int
    tcb_date: datetime | None
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TdxModule:
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes


@dataclass(frozen=True)
class TdxModuleIdentity:
    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[IsvTcbLevel, ...]


@dataclass(frozen=True)
class TcbInfo:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModule | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]
    signed_body: bytes
    signature: bytes


@dataclass(frozen=True)
class EnclaveIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isv_prod_id: int
    tcb_levels: tuple[IsvTcbLevel, ...]
    signed_body: bytes
    signature: bytes


def _duplicate(key: str) -> MalformedEvidence:
    return MalformedEvidence(f"JSON member '{key}' appears twice")


_DECODER = json.JSONDecoder(object_pairs_hook=strict_json.unique_keys(_duplicate))


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _expect(text: str, at: int, char: str) -> int:
    at = _skip(text, at)
    if at >= len(text) or text[at] != char:
        raise MalformedEvidence(f"expected '{char}' at character {at}")
    return at + 1


def top_level_members(data: bytes) -> dict[str, tuple[Any, bytes]]:
    """Members of a top-level JSON object: key -> (decoded value, exact encoded bytes).

    The walk over the outer object uses the standard decoder for every key and value, so
    each value's span is exactly what the decoder consumed.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise MalformedEvidence(f"not UTF-8 text ({err.reason})") from None
    members: dict[str, tuple[Any, bytes]] = {}
    try:
        at = _expect(text, 0, "{")
        at = _skip(text, at)
        if at < len(text) and text[at] == "}":
            at += 1
        else:
            while True:
                key, at = _DECODER.raw_decode(text, _skip(text, at))
                if not isinstance(key, str):
                    raise MalformedEvidence("object key is not a string")
                at = _skip(text, _expect(text, at, ":"))
                value, end = _DECODER.raw_decode(text, at)
                if key in members:
                    raise MalformedEvidence(f"JSON member '{key}' appears twice")
                members[key] = (value, text[at:end].encode("utf-8"))
                at = _skip(text, end)
                if at < len(text) and text[at] == ",":
                    at += 1
                    continue
                at = _expect(text, at, "}")
                break
    except json.JSONDecodeError as err:
        raise MalformedEvidence(f"not valid JSON: {err.msg} at character {err.pos}") from None
    except RecursionError:
        raise MalformedEvidence("JSON nested too deeply") from None
    if _skip(text, at) != len(text):
        raise MalformedEvidence("unexpected data after the JSON object")
    return members


def signed_kind(data: bytes) -> str | None:
    """Which signed collateral a PCS response holds (``tcbInfo``/``enclaveIdentity``)."""
    members = top_level_members(data)
    kinds = [k for k in SIGNED_KEYS if k in members]
    if len(kinds) != 1:
        return None
    return TCB_INFO_KEY if kinds[0] == TCB_INFO_KEY else "enclaveIdentity"


def _split(data: bytes, keys: tuple[str, ...]) -> tuple[str, dict[str, Any], bytes, bytes]:
    members = top_level_members(data)
    found = [k for k in keys if k in members]
    if len(found) != 1:
        raise MalformedEvidence(f"expected exactly one of {', '.join(keys)} at the top level")
    extra = set(members) - {found[0], SIGNATURE_KEY}
    if extra:
        raise MalformedEvidence(f"unexpected top-level member(s): {', '.join(sorted(extra))}")
    value, body = members[found[0]]
    if not isinstance(value, dict):
        raise MalformedEvidence(f"'{found[0]}' is not an object")
    if SIGNATURE_KEY not in members:
        raise MalformedEvidence("the response has no 'signature'")
    signature = _hex_value(members[SIGNATURE_KEY][0], SIGNATURE_KEY, 64)
    return found[0], value, body, signature


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise MalformedEvidence(f"{where}: missing '{key}'")
    return obj[key]


def _hex_value(value: Any, key: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise MalformedEvidence(f"'{key}' is not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MalformedEvidence(f"'{key}' is not a hex string") from None
    if len(raw) != size:
        raise MalformedEvidence(f"'{key}' is {len(raw)} bytes, expected {size}")
    return raw


def _hex(obj: dict[str, Any], key: str, size: int, where: str) -> bytes:
    return _hex_value(_get(obj, key, where), f"{where}.{key}", size)


def _int(obj: dict[str, Any], key: str, where: str, maximum: int = 0xFFFF) -> int:
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise MalformedEvidence(f"{where}.{key} is not an integer in 0..{maximum}")
    return value


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise MalformedEvidence(f"{where}.{key} is not a string")
    return value


def _date(obj: dict[str, Any], key: str, where: str) -> datetime:
    value = _str(obj, key, where)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvidence(f"{where}.{key} is not an ISO 8601 date: {value!r}") from None
    if parsed.tzinfo is None:
        raise MalformedEvidence(f"{where}.{key} has no time zone: {value!r}")
    return parsed


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{where} is not an object")
    return value


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = _get(obj, key, where)
    if not isinstance(value, list):
        raise MalformedEvidence(f"{where}.{key} is not a list")
    return value


def _advisories(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    value = obj.get("advisoryIDs", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedEvidence(f"{where}.advisoryIDs is not a list of strings")
    return tuple(value)


def _components(obj: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
    items = _list(obj, key, where)
    if len(items) != COMPONENT_COUNT:
        raise MalformedEvidence(f"{where}.{key} has {len(items)} entries, expected 16")
    # Every level of every TCB info has 16 of these: read them without building the
    # location strings, which only a refusal (the loop below) needs.
    svns = [item.get("svn") if isinstance(item, dict) else None for item in items]
    if all(type(svn) is int and 0 <= svn <= 0xFF for svn in svns):
        return tuple(svns)
    return tuple(
        _int(_object(item, f"{where}.{key}[{i}]"), "svn", f"{where}.{key}[{i}]", 0xFF)
        for i, item in enumerate(items)
    )


def _optional_date(obj: dict[str, Any], key: str, where: str) -> datetime | None:
    return _date(obj, key, where) if key in obj else None


def _tcb_level(item: Any, where: str, version: int, tee_id: str) -> TcbLevel:
    level = _object(item, where)
    tcb = _object(_get(level, "tcb", where), f"{where}.tcb")
    if version == 2:
        sgx = tuple(_int(tcb, k, f"{where}.tcb", 0xFF) for k in V2_COMPONENT_KEYS)
        tdx = None
    else:
        sgx = _components(tcb, "sgxtcbcomponents", f"{where}.tcb")
        tdx = _components(tcb, "tdxtcbcomponents", f"{where}.tcb") if tee_id == "TDX" else None
    return TcbLevel(
        sgx_svns=sgx,
        pce_svn=_int(tcb, "pcesvn", f"{where}.tcb"),
        tdx_svns=tdx,
        tcb_date=_optional_date(level, "tcbDate", where),
        status=_str(level, "tcbStatus", where),
        advisory_ids=_advisories(level, where),
    )


def _isv_levels(obj: dict[str, Any], where: str) -> tuple[IsvTcbLevel, ...]:
    levels = []
    for i, item in enumerate(_list(obj, "tcbLevels", where)):
        at = f"{where}.tcbLevels[{i}]"
        level = _object(item, at)
        tcb = _object(_get(level, "tcb", at), f"{at}.tcb")
        levels.append(
            IsvTcbLevel(
                isv_svn=_int(tcb, "isvsvn", f"{at}.tcb"),
                tcb_date=_optional_date(level, "tcbDate", at),
                status=_str(level, "tcbStatus", at),
                advisory_ids=_advisories(level, at),
            )
        )
    # Highest SVN first: the first level at or below a reported SVN is the one that applies.
    return tuple(sorted(levels, key=lambda lv: lv.isv_svn, reverse=True))


def _tdx_module(obj: dict[str, Any], where: str) -> TdxModule:
    return TdxModule(
        mrsigner=_hex(obj, "mrsigner", TDX_MODULE_HEX_SIZES["mrsigner"], where),
        attributes=_hex(obj, "attributes", TDX_MODULE_HEX_SIZES["attributes"], where),
        attributes_mask=_hex(obj, "attributesMask", TDX_MODULE_HEX_SIZES["attributesMask"], where),
    )


def _module_identity(item: Any, where: str) -> TdxModuleIdentity:
    obj = _object(item, where)
    module = _tdx_module(obj, where)
    return TdxModuleIdentity(
        id=_str(obj, "id", where).upper(),
        mrsigner=module.mrsigner,
        attributes=module.attributes,
        attributes_mask=module.attributes_mask,
        tcb_levels=_isv_levels(obj, where),
    )


def parse_tcb_info(data: bytes) -> TcbInfo:
    """Parse a PCS TCB info response (``{"tcbInfo": ..., "signature": ...}``)."""
    _key, info, body, signature = _split(data, (TCB_INFO_KEY,))
    where = TCB_INFO_KEY
    version = _int(info, "version", where)
    if version not in TCB_INFO_VERSIONS:
        raise MalformedEvidence(f"TCB info version {version} is not supported (2 or 3)")
    tee_id = _str(info, "id", where) if version >= 3 else "SGX"
    if tee_id not in TCB_INFO_IDS:
        raise MalformedEvidence(f"TCB info id '{tee_id}' is not SGX or TDX")
    levels = [
        _tcb_level(item, f"{where}.tcbLevels[{i}]", version, tee_id)
        for i, item in enumerate(_list(info, "tcbLevels", where))
    ]
    tdx_module = None
    identities: tuple[TdxModuleIdentity, ...] = ()
    if tee_id == "TDX":
        tdx_module = _tdx_module(_object(_get(info, "tdxModule", where), where), "tdxModule")
        identities = tuple(
            _module_identity(item, f"{where}.tdxModuleIdentities[{i}]")
            for i, item in enumerate(info.get("tdxModuleIdentities", []))
        )
    return TcbInfo(
        id=tee_id,
        version=version,
        issue_date=_date(info, "issueDate", where),
        next_update=_date(info, "nextUpdate", where),
        fmspc=_hex(info, "fmspc", TCB_INFO_HEX_SIZES["fmspc"], where),
        pce_id=_hex(info, "pceId", TCB_INFO_HEX_SIZES["pceId"], where),
        tcb_type=_int(info, "tcbType", where),
        tcb_evaluation_data_number=_int(info, "tcbEvaluationDataNumber", where, 0xFFFFFFFF),
        tdx_module=tdx_module,
        tdx_module_identities=identities,
        # Intel lists levels highest first; sorting (as Intel's verifier does) makes the
        # first match the best one even if a producer reordered them.
        tcb_levels=tuple(sorted(levels, key=TcbLevel.sort_key, reverse=True)),
        signed_body=body,
        signature=signature,
    )


def parse_enclave_identity(data: bytes) -> EnclaveIdentity:
    """Parse a PCS QE identity response (``enclaveIdentity`` or ``qeIdentity`` key)."""
    key, ident, body, signature = _split(data, IDENTITY_KEYS)
    version = _int(ident, "version", key)
    if version not in IDENTITY_VERSIONS:
        raise MalformedEvidence(f"enclave identity version {version} is not supported (2)")
    hexes = {name: _hex(ident, name, size, key) for name, size in IDENTITY_HEX_SIZES.items()}
    return EnclaveIdentity(
        id=_str(ident, "id", key),
        version=version,
        issue_date=_date(ident, "issueDate", key),
        next_update=_date(ident, "nextUpdate", key),
        tcb_evaluation_data_number=_int(ident, "tcbEvaluationDataNumber", key, 0xFFFFFFFF),
        miscselect=hexes["miscselect"],
        miscselect_mask=hexes["miscselectMask"],
        attributes=hexes["attributes"],
        attributes_mask=hexes["attributesMask"],
        mrsigner=hexes["mrsigner"],
        isv_prod_id=_int(ident, "isvprodid", key),
        tcb_levels=_isv_levels(ident, key),
        signed_body=body,
        signature=signature,
    )
