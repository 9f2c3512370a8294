"""The SGX extension of Intel PCK certificates (OID 1.2.840.113741.1.13.1).

The extension is a SEQUENCE OF (OID, value) pairs; the TCB and configuration members
nest the same shape one level deeper. Each OID maps to the ASN.1 type Intel's PCK
certificate specification gives it; the table below is the whole grammar.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509

from workbench.attestation.formats import der
from workbench.attestation.verify.result import EvidenceRejected

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_SGX = SGX_EXTENSION_OID

PPID = f"{_SGX}.1"
TCB = f"{_SGX}.2"
PCE_ID = f"{_SGX}.3"
FMSPC = f"{_SGX}.4"
SGX_TYPE = f"{_SGX}.5"
PLATFORM_INSTANCE_ID = f"{_SGX}.6"
CONFIGURATION = f"{_SGX}.7"
TCB_COMPONENTS = tuple(f"{TCB}.{i}" for i in range(1, 17))
TCB_PCESVN = f"{TCB}.17"
TCB_CPUSVN = f"{TCB}.18"
CONFIG_DYNAMIC_PLATFORM = f"{CONFIGURATION}.1"
CONFIG_CACHED_KEYS = f"{CONFIGURATION}.2"
CONFIG_SMT_ENABLED = f"{CONFIGURATION}.3"

SGX_TYPE_NAMES = {0: "Standard", 1: "Scalable", 2: "ScalableWithIntegrity"}

CHECK = "pck-extensions"


# ASN.1 types of the values: (tag, name used in refusals).
_OCTETS = (der.OCTET_STRING, "OctetString")
_INTEGER = (der.INTEGER, "Integer")
_ENUMERATED = (der.ENUMERATED, "Enumerated")
_BOOLEAN = (der.BOOLEAN, "Boolean")

# OID -> (ASN.1 type of the value, exact size for OCTET STRINGs or None)
_LEAF_TYPES: dict[str, tuple[tuple[int, str], int | None]] = {
    PPID: (_OCTETS, 16),
    PCE_ID: (_OCTETS, 2),
    FMSPC: (_OCTETS, 6),
    SGX_TYPE: (_ENUMERATED, None),
    PLATFORM_INSTANCE_ID: (_OCTETS, 16),
    TCB_PCESVN: (_INTEGER, None),
    TCB_CPUSVN: (_OCTETS, 16),
    CONFIG_DYNAMIC_PLATFORM: (_BOOLEAN, None),
    CONFIG_CACHED_KEYS: (_BOOLEAN, None),
    CONFIG_SMT_ENABLED: (_BOOLEAN, None),
    **{oid: (_INTEGER, None) for oid in TCB_COMPONENTS},
}


def _encode_oid(text: str) -> bytes:
    arcs = [int(a) for a in text.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


# Encoded OID -> its dotted text, for every member this module reads: looked up by bytes,
# so only members it does not know are decoded arc by arc.
_KNOWN_OIDS = {_encode_oid(oid): oid for oid in (*_LEAF_TYPES, TCB, CONFIGURATION)}
_NESTED = frozenset({TCB, CONFIGURATION})
_REQUIRED = (PPID, TCB, PCE_ID, FMSPC, SGX_TYPE)
_REQUIRED_TCB = (*TCB_COMPONENTS, TCB_PCESVN, TCB_CPUSVN)


@dataclass(frozen=True)
class PckExtensions:
    ppid: bytes
    sgx_svns: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None

    @property
    def sgx_type_name(self) -> str:
        return SGX_TYPE_NAMES.get(self.sgx_type, f"unknown ({self.sgx_type})")


def _reject(reason: str) -> EvidenceRejected:
    return EvidenceRejected(CHECK, f"PCK certificate SGX extension: {reason}")


def _decode_entries(data: bytes, where: str) -> dict[str, bytes]:
    """OID -> the whole DER encoding of its value, for a SEQUENCE OF (OID, value)."""
    out: dict[str, bytes] = {}
    try:
        body = der.single(data, der.SEQUENCE, "SEQUENCE")
        at = 0
        while at < len(body):
            tag, pair, at = der.read_tlv(body, at)
            if tag != der.SEQUENCE:
                raise der.DerError("an entry is not a SEQUENCE")
            id_tag, id_raw, value_at = der.read_tlv(pair)
            if id_tag != der.OID or value_at >= len(pair):
                raise der.DerError("an entry is not (OID, value)")
            if der.read_tlv(pair, value_at)[2] != len(pair):
                raise der.DerError("an entry is not (OID, value)")
            oid = _KNOWN_OIDS.get(id_raw) or der.oid_text(id_raw)
            if oid in out:
                raise _reject(f"{oid} appears twice in {where}")
            out[oid] = pair[value_at:]
    except der.DerError as err:
        if str(err) == "trailing bytes":
            raise _reject(f"{where} has trailing bytes") from None
        raise _reject(f"{where} is not a sequence of (OID, value) pairs ({err})") from None
    return out


def _decode_leaf(oid: str, data: bytes) -> Any:
    (tag, name), size = _LEAF_TYPES[oid]
    try:
        value = der.single(data, tag, name)
        if tag == der.OCTET_STRING:
            if size is not None and len(value) != size:
                raise _reject(f"{oid} is {len(value)} bytes, expected {size}")
            return value
        if tag == der.BOOLEAN:
            return der.boolean(value)
        number = der.integer(value)
    except der.DerError as err:
        if str(err) == "trailing bytes":
            raise _reject(f"{oid} has trailing bytes") from None
        raise _reject(f"{oid} is not {name} ({err})") from None
    if number < 0:
        raise _reject(f"{oid} is negative")
    return number


def _flatten(der: bytes) -> dict[str, Any]:
    """Decode the extension into OID -> Python value, nested members included."""
    values: dict[str, Any] = {}
    for oid, raw in _decode_entries(der, "the extension").items():
        if oid in _NESTED:
            values[oid] = True
            for inner, inner_raw in _decode_entries(raw, oid).items():
                if inner in _LEAF_TYPES and inner.startswith(oid + "."):
                    values[inner] = _decode_leaf(inner, inner_raw)
        elif oid in _LEAF_TYPES:
            values[oid] = _decode_leaf(oid, raw)
        # Unknown members are ignored: Intel adds members over time without a version.
    return values


@lru_cache(maxsize=64)
def _parse(der: bytes) -> PckExtensions:
    values = _flatten(der)
    missing = [oid for oid in (*_REQUIRED, *_REQUIRED_TCB) if oid not in values]
    if missing:
        raise _reject(f"missing {', '.join(missing)}")
    svns = tuple(values[oid] for oid in TCB_COMPONENTS)
    if any(s > 0xFF for s in svns) or values[TCB_PCESVN] > 0xFFFF:
        raise _reject("a TCB component SVN is out of range")
    return PckExtensions(
        ppid=values[PPID],
        sgx_svns=svns,
        pce_svn=values[TCB_PCESVN],
        cpu_svn=values[TCB_CPUSVN],
        pce_id=values[PCE_ID],
        fmspc=values[FMSPC],
        sgx_type=values[SGX_TYPE],
        platform_instance_id=values.get(PLATFORM_INSTANCE_ID),
        dynamic_platform=values.get(CONFIG_DYNAMIC_PLATFORM),
        cached_keys=values.get(CONFIG_CACHED_KEYS),
        smt_enabled=values.get(CONFIG_SMT_ENABLED),
    )


def clear_cache() -> None:
    """Forget parsed extensions (benchmarks use it to time a first verification)."""
    _parse.cache_clear()


def pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """The SGX extension of a PCK certificate. Raises EvidenceRejected (pck-extensions).

    Parsing is a pure function of the extension's DER bytes, so results are cached by
    those bytes: the same PCK certificate arrives with every quote from one platform.
    """
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    except x509.ExtensionNotFound:
        raise _reject("not present: this is not a PCK certificate") from None
    except (ValueError, TypeError) as err:
        raise _reject(f"certificate extensions do not parse ({err})") from None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise _reject("unexpected extension type")
    return _parse(value.value)
