"""Azure confidential VM HCL reports and their runtime data, as typed values.

No cryptography: ``parse_hcl_report`` checks the structure (magic, version, sizes, report and
hash types, the runtime-data JSON) and hands the hardware report to its own parser (the
SEV-SNP parser; TD reports are read here, their layout in ``azure_hcl_offsets``). Whether
report_data binds the variable data, and whether anything is signed, is
``workbench.attestation.verify.azure``'s job. Every error names the field it is about.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from workbench.attestation.formats import azure_hcl_offsets as off
from workbench.attestation.formats import strict_json
from workbench.attestation.formats.dcap import TdReport
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.snp import SnpReport, parse_report

_U32 = struct.Struct("<I")
# The NV index is 2600 bytes on today's VMs; anything far larger is not an HCL report.
MAX_HCL_REPORT = 64 * 1024


@dataclass(frozen=True)
class RsaJwk:
    """An RSA public key as the runtime data carries it (JWK members, still base64url)."""

    kid: str
    n: str
    e: str
    key_ops: tuple[str, ...]


@dataclass(frozen=True)
class RuntimeData:
    """The variable data's JSON: keys by kid, vm-configuration, user-data."""

    keys: dict[str, dict[str, Any]]
    ak_pub: RsaJwk
    vm_configuration: dict[str, Any]
    user_data: str | None
    document: dict[str, Any] = field(repr=False)

    @property
    def flags(self) -> dict[str, bool | None]:
        """vm-configuration booleans under their claim names (None: not stated)."""
        config = self.vm_configuration
        return {claim: config.get(key) for key, claim in off.VM_CONFIGURATION_FLAGS.items()}

    @property
    def values(self) -> dict[str, Any]:
        return {
            claim: self.vm_configuration[key]
            for key, claim in off.VM_CONFIGURATION_VALUES.items()
            if key in self.vm_configuration
        }


@dataclass(frozen=True)
class HclReport:
    """One parsed HCL report. ``snp`` or ``td`` is set, as ``report_type`` says."""

    version: int
    report_size: int
    request_type: int
    status: int
    report_type: str
    hash_type: str
    hash_size: int
    hw_report: bytes
    snp: SnpReport | None
    td: TdReport | None
    variable_data: bytes
    runtime: RuntimeData
    raw: bytes = field(repr=False)

    @property
    def report_data(self) -> bytes:
        """The hardware report's 64-byte report data."""
        hardware = self.snp if self.snp is not None else self.td
        assert hardware is not None  # one of the two is always set by the parser
        return hardware.report_data


def _u32(data: bytes, offset: int) -> int:
    return _U32.unpack_from(data, offset)[0]


def _bad(field_name: str, problem: str) -> MalformedEvidence:
    return MalformedEvidence(f"HCL report {field_name}: {problem}")


def _header(data: bytes) -> dict[str, int]:
    if len(data) < off.VARIABLE_DATA:
        raise _bad("size", f"{len(data)} bytes is too short (header, hardware report slot and "
                   f"request data need {off.VARIABLE_DATA})")
    if data[off.SIGNATURE:off.SIGNATURE + 4] != off.HEADER_SIGNATURE:
        raise _bad("signature", f"{data[:4].hex()} is not 'HCLA' (not an HCL report)")
    values = {name: _u32(data, at) for name, at, size in off.HEADER_FIELDS if size == 4}
    if values["version"] not in off.SUPPORTED_VERSIONS:
        raise _bad("version", f"{values['version']} is not supported "
                   f"({', '.join(map(str, off.SUPPORTED_VERSIONS))})")
    return values


def _sizes(data: bytes, values: dict[str, int]) -> bytes:
    size = values["variable_data_size"]
    end = off.VARIABLE_DATA + size
    if values["data_size"] != off.REQUEST_DATA_HEADER_SIZE + size:
        raise _bad("data_size", f"{values['data_size']} is not the request data header "
                   f"({off.REQUEST_DATA_HEADER_SIZE}) plus variable_data_size ({size})")
    if end > len(data):
        raise _bad("variable_data_size", f"{size} bytes run past the end of the report "
                   f"({len(data)} bytes)")
    if values["report_size"] != end:
        raise _bad("report_size", f"{values['report_size']} is not where the variable data "
                   f"ends ({end})")
    # The NV index is larger than the report; the paravisor zero-fills the rest.
    if any(data[end:]):
        raise _bad("padding", f"bytes after the report ({end}..{len(data)}) are not zero")
    return data[off.VARIABLE_DATA:end]


def parse_td_report(raw: bytes) -> TdReport:
    """Parse a 1024-byte TDX TDREPORT_STRUCT into the fields a TD quote body also has."""
    if len(raw) < off.TD_REPORT_SIZE:
        raise _bad("TD report", f"{len(raw)} bytes, expected {off.TD_REPORT_SIZE}")
    if raw[off.TD_REPORT_TYPE] != off.TD_REPORT_TYPE_TDX:
        raise _bad("TD report type", f"0x{raw[off.TD_REPORT_TYPE]:02x} is not TDX (0x81)")
    values = {name: bytes(raw[at:at + size]) for name, at, size in off.TD_REPORT_FIELDS}
    return TdReport(raw=bytes(raw[:off.TD_REPORT_SIZE]), **values)


def _hardware(data: bytes, report_type: str, size: int) -> tuple[SnpReport | None, TdReport | None]:
    slot = data[off.HW_REPORT:off.HW_REPORT + off.HW_REPORT_SLOT]
    if any(slot[size:]):
        raise _bad("hardware report", f"the {report_type.upper()} report's slot is not zero "
                   f"after its {size} bytes")
    if report_type == "snp":
        try:
            return parse_report(slot[:size]), None
        except MalformedEvidence as err:
            raise _bad("SEV-SNP report", str(err)) from None
    return None, parse_td_report(slot[:size])


def _jwk(keys: list[Any]) -> dict[str, dict[str, Any]]:
    by_kid: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str):
            raise _bad("runtime data keys", f"entry {index} is not a JWK with a 'kid'")
        if key["kid"] in by_kid:
            raise _bad("runtime data keys", f"kid '{key['kid']}' appears twice")
        by_kid[key["kid"]] = key
    return by_kid


def _ak(keys: dict[str, dict[str, Any]]) -> RsaJwk:
    key = keys.get(off.AK_KEY_ID)
    if key is None:
        raise _bad("runtime data keys", f"no '{off.AK_KEY_ID}' key (the vTPM attestation key)")
    if key.get("kty") != "RSA":
        raise _bad(off.AK_KEY_ID, f"kty is {key.get('kty')!r}, not 'RSA'")
    for member in ("n", "e"):
        if not isinstance(key.get(member), str) or not key[member]:
            raise _bad(off.AK_KEY_ID, f"'{member}' is missing or not a base64url string")
    ops = key.get("key_ops", [])
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise _bad(off.AK_KEY_ID, "'key_ops' is not a list of strings")
    return RsaJwk(kid=off.AK_KEY_ID, n=key["n"], e=key["e"], key_ops=tuple(ops))


def parse_runtime_data(data: bytes) -> RuntimeData:
    """Parse the variable data: a JSON object with ``keys`` (JWKs, one ``HCLAkPub``),
    ``vm-configuration`` (an object) and optional ``user-data`` (a hex string)."""
    try:
        document = strict_json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _bad("variable data", f"is not a UTF-8 JSON document ({err})") from None
    if not isinstance(document, dict):
        raise _bad("variable data", "is not a JSON object")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise _bad("runtime data keys", "'keys' is missing or not a list")
    by_kid = _jwk(keys)
    config = document.get("vm-configuration", {})
    if not isinstance(config, dict):
        raise _bad("vm-configuration", "is not a JSON object")
    for key in off.VM_CONFIGURATION_FLAGS:
        if key in config and not isinstance(config[key], bool):
            raise _bad("vm-configuration", f"'{key}' is {config[key]!r}, not a boolean")
    user_data = document.get("user-data")
    if user_data is not None:
        if not isinstance(user_data, str):
            raise _bad("user-data", "is not a string")
        try:
            bytes.fromhex(user_data)
        except ValueError:
            raise _bad("user-data", f"{user_data[:20]!r}… is not hex") from None
    return RuntimeData(keys=by_kid, ak_pub=_ak(by_kid), vm_configuration=config,
                       user_data=user_data, document=document)


def parse_hcl_report(data: bytes) -> HclReport:
    """Parse an HCL report as read from the vTPM NV index (zero padding allowed)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence(f"HCL report must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_HCL_REPORT:
        raise _bad("size", f"{len(data)} bytes is larger than {MAX_HCL_REPORT}")
    values = _header(data)
    try:
        report_type, hw_size = off.REPORT_TYPES[values["report_type"]]
    except KeyError:
        raise _bad("report_type", f"{values['report_type']} is neither SEV-SNP (2) nor TDX (4)"
                   ) from None
    try:
        hash_type, hash_size = off.HASH_TYPES[values["hash_type"]]
    except KeyError:
        raise _bad("hash_type", f"{values['hash_type']} is not SHA-256 (1), SHA-384 (2) or "
                   "SHA-512 (3)") from None
    variable_data = _sizes(data, values)
    snp, td = _hardware(data, report_type, hw_size)
    return HclReport(
        version=values["version"],
        report_size=values["report_size"],
        request_type=values["request_type"],
        status=values["status"],
        report_type=report_type,
        hash_type=hash_type,
        hash_size=hash_size,
        hw_report=data[off.HW_REPORT:off.HW_REPORT + hw_size],
        snp=snp,
        td=td,
        variable_data=variable_data,
        runtime=parse_runtime_data(variable_data),
        raw=data,
    )
