"""Synthetic SEV-SNP pieces for testing verification steps no real vector reaches.

Real vectors cover Milan VCEK/VLEK end to end. Turin layouts, a signer that disagrees with
its certificate, a wrong TCB or chip id cannot be produced with AMD's keys, so these helpers
make a look-alike endorsement key (same names and AMD extensions, our own key pair) and
re-sign edited reports with it. They are used on single verification steps only: nothing
here can pass the pinned chain.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import encoder
from pyasn1.type import char, univ

from workbench.attestation.formats import snp_offsets as off
from workbench.attestation.verify import pinned

AMD = "1.3.6.1.4.1.3704.1."
SPL_OID_BY_NAME = {
    "bootloader": AMD + "3.1",
    "tee": AMD + "3.2",
    "snp": AMD + "3.3",
    "spl4": AMD + "3.4",
    "spl5": AMD + "3.5",
    "spl6": AMD + "3.6",
    "spl7": AMD + "3.7",
    "microcode": AMD + "3.8",
    "fmc": AMD + "3.9",
}


def der_integer(value: int) -> bytes:
    return encoder.encode(univ.Integer(value))


def der_ia5(value: str) -> bytes:
    return encoder.encode(char.IA5String(value))


def der_octets(value: bytes) -> bytes:
    return encoder.encode(univ.OctetString(value))


def endorsement_cert(
    *,
    kind: str = "vcek",
    product: str = "milan",
    product_name: str = "Milan-B0",
    spl: dict[str, int] | None = None,
    hwid: bytes | None = None,
    csp_id: str | None = None,
    raw_extensions: dict[str, bytes] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A DER certificate shaped like AMD's VCEK/VLEK, issued in the pinned ASK's name."""
    key = key or ec.generate_private_key(ec.SECP384R1())
    issuer_key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"SEV-{kind.upper()}")])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pinned.amd_signing_key(product, kind).subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
    )
    values: dict[str, bytes] = {AMD + "1": der_integer(0), AMD + "2": der_ia5(product_name)}
    for name, level in (spl or {}).items():
        values[SPL_OID_BY_NAME[name]] = der_integer(level)
    if hwid is not None:
        values[AMD + "4"] = hwid
    if csp_id is not None:
        values[AMD + "5"] = der_ia5(csp_id)
    values.update(raw_extensions or {})
    for oid, value in values.items():
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)
        builder = builder.add_extension(ext, critical=False)
    cert = builder.sign(issuer_key, hashes.SHA384())
    return cert.public_bytes(Encoding.DER), key


def resign(report: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """Sign ``report[:0x2A0]`` with ``key`` the way the AMD-SP does (R, S little-endian)."""
    data = bytearray(report)
    signature = key.sign(bytes(data[: off.SIGNED_END]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(signature)
    size = off.ECDSA_COMPONENT_SIZE
    data[off.SIGNATURE_R : off.SIGNATURE_R + size] = r.to_bytes(size, "little")
    data[off.SIGNATURE_S : off.SIGNATURE_S + size] = s.to_bytes(size, "little")
    return bytes(data)


def edit(report: bytes, **fields: int | bytes) -> bytes:
    """Overwrite named fields (see snp_offsets.FIELDS); ints are written little-endian."""
    data = bytearray(report)
    layout = {name: (offset, size) for name, offset, size in off.FIELDS}
    for name, value in fields.items():
        offset, size = layout[name]
        raw = value if isinstance(value, bytes) else value.to_bytes(size, "little")
        assert len(raw) == size, f"{name} needs {size} bytes"
        data[offset : offset + size] = raw
    return bytes(data)


def tcb_raw(product: str, **levels: int) -> int:
    """Compose a TCB_VERSION for ``product`` from named patch levels."""
    octets = bytearray(8)
    for name, index in off.TCB_LAYOUTS[product].items():
        octets[index] = levels.get(name, 0)
    return struct.unpack("<Q", bytes(octets))[0]
