"""The AMD KDS extensions of VCEK and VLEK certificates (OIDs 1.3.6.1.4.1.3704.1.*).

They say which product the key belongs to, which TCB it was derived for, and (VCEK) which
chip or (VLEK) which cloud provider holds it. `cryptography` hands us the raw extension
values; pyasn1 decodes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from cryptography import x509
from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, univ

_PREFIX = "1.3.6.1.4.1.3704.1."

# extension name -> OID. The SPL names are the VCEK specification's.
STRUCT_VERSION = _PREFIX + "1"
PRODUCT_NAME = _PREFIX + "2"
HWID = _PREFIX + "4"
CSP_ID = _PREFIX + "5"
# KDS SPL extension -> the TCB component (formats.snp_offsets.TCB_LAYOUTS) it certifies.
SPL_OIDS: dict[str, str] = {
    _PREFIX + "3.1": "bootloader",  # blSPL
    _PREFIX + "3.2": "tee",  # teeSPL
    _PREFIX + "3.3": "snp",  # snpSPL
    _PREFIX + "3.4": "spl4",
    _PREFIX + "3.5": "spl5",
    _PREFIX + "3.6": "spl6",
    _PREFIX + "3.7": "spl7",
    _PREFIX + "3.8": "microcode",  # ucodeSPL
    _PREFIX + "3.9": "fmc",  # fmcSPL (Turin)
}
# Chip identifiers: 64 bytes on Milan/Genoa, 8 on Turin (the report pads with zeros).
HWID_SIZES = (64, 8)


class ExtensionError(ValueError):
    """An AMD extension is missing, repeated or not encoded as the KDS specifies."""


@dataclass(frozen=True)
class AmdKeyExtensions:
    struct_version: int | None
    product_name: str | None
    spl: Mapping[str, int] = field(default_factory=dict)
    hwid: bytes | None = None
    csp_id: str | None = None

    @property
    def product(self) -> str | None:
        """``Milan-B0`` -> ``milan``; the stepping suffix is optional (VLEKs omit it)."""
        if not self.product_name:
            return None
        return self.product_name.split("-", 1)[0].lower()


def _decode(value: bytes, spec: univ.Asn1Item, name: str) -> object:
    try:
        decoded, rest = decoder.decode(value, asn1Spec=spec)
    except PyAsn1Error as err:
        raise ExtensionError(f"AMD extension {name} is not a valid DER value ({err})") from err
    if rest:
        raise ExtensionError(f"AMD extension {name} has {len(rest)} trailing bytes")
    return decoded


def _u8(value: bytes, name: str) -> int:
    number = int(_decode(value, univ.Integer(), name))  # type: ignore[call-overload]
    if not 0 <= number <= 0xFF:
        raise ExtensionError(f"AMD extension {name} is {number}, outside 0..255")
    return number


def _ia5(value: bytes, name: str) -> str:
    return str(_decode(value, char.IA5String(), name))


def _hwid(value: bytes) -> bytes:
    # KDS has issued the hwID both as the bare bytes and as a DER OCTET STRING.
    if len(value) in HWID_SIZES:
        return value
    octets = bytes(_decode(value, univ.OctetString(), "hwID"))  # type: ignore[call-overload]
    if len(octets) not in HWID_SIZES:
        raise ExtensionError(f"AMD extension hwID is {len(octets)} bytes, expected 64 or 8")
    return octets


def parse_amd_extensions(cert: x509.Certificate) -> AmdKeyExtensions:
    """Decode every AMD KDS extension of ``cert``; raises ExtensionError when malformed."""
    try:
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension) as err:
        raise ExtensionError(f"the certificate's extensions cannot be read ({err})") from err
    values: list[tuple[str, bytes]] = []
    for ext in extensions:
        oid = ext.oid.dotted_string
        if not oid.startswith(_PREFIX):
            continue
        if not isinstance(ext.value, x509.UnrecognizedExtension):
            raise ExtensionError(f"AMD extension {oid} could not be read")
        values.append((oid, ext.value.value))
    return _decode_values(tuple(values))


@lru_cache(maxsize=64)
def _decode_values(items: tuple[tuple[str, bytes], ...]) -> AmdKeyExtensions:
    # A pure function of the exact extension bytes, and pyasn1 is slow, so the decoding of
    # a repeated VCEK (one host, many reports) is remembered. Errors are never cached.
    values: dict[str, bytes] = {}
    for oid, raw in items:
        if oid in values:
            raise ExtensionError(f"AMD extension {oid} appears twice")
        values[oid] = raw
    spl = {name: _u8(values[oid], name) for oid, name in SPL_OIDS.items() if oid in values}
    return AmdKeyExtensions(
        struct_version=_u8(values[STRUCT_VERSION], "structVersion")
        if STRUCT_VERSION in values
        else None,
        product_name=_ia5(values[PRODUCT_NAME], "productName") if PRODUCT_NAME in values else None,
        spl=MappingProxyType(spl),
        hwid=_hwid(values[HWID]) if HWID in values else None,
        csp_id=_ia5(values[CSP_ID], "cspID") if CSP_ID in values else None,
    )
