"""AMD SEV-SNP attestation reports (versions 2 to 5, 1184 bytes) as typed values.

No cryptography here: ``parse_report`` only checks the structure (size, version, signature
algorithm, must-be-zero fields) and decodes fields. Whether the report is signed by a key
AMD endorsed is ``workbench.attestation.verify.snp``'s job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from workbench.attestation.formats import snp_offsets as off
from workbench.attestation.formats.errors import MalformedEvidence

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_PRODUCTS = tuple(off.TCB_LAYOUTS)


@dataclass(frozen=True)
class TcbVersion:
    """A TCB_VERSION decoded with one product's layout.

    ``fmc`` exists on Turin only; ``reserved`` keeps the bytes that layout leaves unnamed
    (Milan/Genoa's spl4..spl7) so a comparison with a VCEK can include them.
    """

    raw: int
    product: str
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None
    reserved: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, int]:
        """The patch levels people compare, JSON-ready; ``fmc`` only where it exists."""
        parts = {
            "bootloader": self.bootloader,
            "tee": self.tee,
            "snp": self.snp,
            "microcode": self.microcode,
        }
        if self.fmc is not None:
            parts["fmc"] = self.fmc
        return parts

    def components(self) -> dict[str, int]:
        """Every component of this product's layout, the reserved ones included."""
        return {**self.to_dict(), **self.reserved}


def decode_tcb(raw: int, product: str) -> TcbVersion:
    """Split a TCB_VERSION into its security patch levels for ``product``."""
    try:
        layout = off.TCB_LAYOUTS[product]
    except KeyError:
        raise MalformedEvidence(
            f"no SEV-SNP TCB_VERSION layout for product {product!r} (known: {', '.join(_PRODUCTS)})"
        ) from None
    octets = raw.to_bytes(8, "little")
    parts = {name: octets[index] for name, index in layout.items()}
    reserved = {n: parts.pop(n) for n in list(parts) if n in off.TCB_RESERVED_COMPONENTS}
    return TcbVersion(raw=raw, product=product, reserved=reserved, **parts)


def product_from_cpuid(family: int, model: int) -> str | None:
    for fam, first, last, product in off.CPUID_PRODUCTS:
        if family == fam and first <= model <= last:
            return product
    return None


@dataclass(frozen=True)
class SnpReport:
    """One parsed ATTESTATION_REPORT. Byte fields are ``bytes``; TCBs are raw u64 values.

    ``product`` is derived from the CPUID fields of version 3+ reports and is None for
    version 2 (which does not say); use :meth:`tcb` to decode a TCB for a product.
    """

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: str
    current_tcb: int
    platform_info: int
    signer_info: int
    signing_key: str
    mask_chip_key: bool
    author_key_en: bool
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid: tuple[int, int, int] | None
    product: str | None
    chip_id: bytes
    committed_tcb: int
    current_version: tuple[int, int, int]
    committed_version: tuple[int, int, int]
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int
    raw: bytes = field(repr=False)

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[: off.SIGNED_END]

    @property
    def debug(self) -> bool:
        return bool(self.policy >> off.POLICY_FLAGS["debug"] & 1)

    @property
    def policy_flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = {
            name: bool(self.policy >> bit & 1) for name, bit in off.POLICY_FLAGS.items()
        }
        flags["abi_major"] = self.policy >> off.POLICY_ABI_MAJOR_SHIFT & 0xFF
        flags["abi_minor"] = self.policy >> off.POLICY_ABI_MINOR_SHIFT & 0xFF
        return flags

    @property
    def platform_flags(self) -> dict[str, bool]:
        return {
            name: bool(self.platform_info >> bit & 1)
            for name, bit in off.PLATFORM_INFO_FLAGS.items()
        }

    def tcb(self, which: str, product: str | None = None) -> TcbVersion:
        """Decode one of the report's TCBs (``reported``, ``current``, ``committed``,
        ``launch``) with ``product``'s layout, defaulting to the report's own product.

        Version 2 reports do not name their product; they come from Milan/Genoa firmware
        (Turin firmware reports version 3 or later), so their shared layout is the default.
        The verifier passes the product its certificate names, so it never relies on this.
        """
        raw = {
            "reported": self.reported_tcb,
            "current": self.current_tcb,
            "committed": self.committed_tcb,
            "launch": self.launch_tcb,
        }[which]
        return decode_tcb(raw, product or self.product or "milan")


def _u32(data: bytes, offset: int) -> int:
    return _U32.unpack_from(data, offset)[0]


def _u64(data: bytes, offset: int) -> int:
    return _U64.unpack_from(data, offset)[0]


def _bytes(data: bytes, offset: int, size: int) -> bytes:
    return bytes(data[offset : offset + size])


def _check_zero(data: bytes, start: int, end: int, what: str) -> None:
    if any(data[start:end]):
        raise MalformedEvidence(
            f"SEV-SNP report {what} 0x{start:03x}..0x{end:03x} must be zero but is "
            f"{data[start:end].hex()}"
        )


def _check_size(data: bytes) -> None:
    if not data:
        raise MalformedEvidence("SEV-SNP report is empty")
    if len(data) < off.REPORT_SIZE:
        raise MalformedEvidence(
            f"SEV-SNP report is truncated: {len(data)} bytes, expected {off.REPORT_SIZE}"
        )
    if len(data) > off.REPORT_SIZE:
        raise MalformedEvidence(
            f"SEV-SNP report is {len(data)} bytes, expected exactly {off.REPORT_SIZE} "
            "(trailing data?)"
        )


def _check_policy(policy: int) -> None:
    if not policy >> off.POLICY_MUST_BE_ONE_BIT & 1:
        raise MalformedEvidence(
            f"SEV-SNP report guest policy 0x{policy:x} has bit {off.POLICY_MUST_BE_ONE_BIT} "
            "clear; the ABI requires it to be one"
        )
    if policy >> off.POLICY_RESERVED_SHIFT:
        raise MalformedEvidence(
            f"SEV-SNP report guest policy 0x{policy:x} sets reserved bits "
            f"63:{off.POLICY_RESERVED_SHIFT}"
        )


def _signing_key(signer_info: int) -> str:
    if signer_info >> off.SIGNER_RESERVED_SHIFT:
        raise MalformedEvidence(
            f"SEV-SNP report SIGNER_INFO 0x{signer_info:08x} sets reserved bits "
            f"31:{off.SIGNER_RESERVED_SHIFT}"
        )
    value = signer_info >> off.SIGNER_SIGNING_KEY_SHIFT & off.SIGNER_SIGNING_KEY_MASK
    try:
        return off.SIGNING_KEYS[value]
    except KeyError:
        raise MalformedEvidence(
            f"SEV-SNP report SIGNER_INFO uses reserved SIGNING_KEY value {value}"
        ) from None


def _little_endian(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset : offset + size], "little")


def parse_report(data: bytes) -> SnpReport:
    """Parse a raw 1184-byte SEV-SNP ATTESTATION_REPORT. Raises only MalformedEvidence."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence(f"SEV-SNP report must be bytes, not {type(data).__name__}")
    data = bytes(data)
    _check_size(data)

    version = _u32(data, off.VERSION)
    if version not in off.RESERVED_BY_VERSION:
        supported = ", ".join(str(v) for v in off.SUPPORTED_VERSIONS)
        raise MalformedEvidence(
            f"SEV-SNP report version {version} is not supported (supported: {supported})"
        )
    algo_value = _u32(data, off.SIGNATURE_ALGO)
    try:
        algo_name, signature_end = off.SIGNATURE_ALGORITHMS[algo_value]
    except KeyError:
        raise MalformedEvidence(
            f"SEV-SNP report uses unknown signature algorithm {algo_value}"
        ) from None
    for start, end in off.RESERVED_BY_VERSION[version]:
        _check_zero(data, start, end, "reserved bytes")
    _check_zero(data, signature_end, off.REPORT_SIZE, "unused signature bytes")

    policy = _u64(data, off.POLICY)
    _check_policy(policy)
    signer_info = _u32(data, off.SIGNER_INFO)
    signing_key = _signing_key(signer_info)

    cpuid: tuple[int, int, int] | None = None
    product: str | None = None
    if version >= off.FIRST_VERSION_WITH_CPUID:
        cpuid = (data[off.CPUID_FAM_ID], data[off.CPUID_MOD_ID], data[off.CPUID_STEP])
        product = product_from_cpuid(cpuid[0], cpuid[1])
    has_mit = version >= off.FIRST_VERSION_WITH_MIT_VECTORS

    return SnpReport(
        version=version,
        guest_svn=_u32(data, off.GUEST_SVN),
        policy=policy,
        family_id=_bytes(data, off.FAMILY_ID, 16),
        image_id=_bytes(data, off.IMAGE_ID, 16),
        vmpl=_u32(data, off.VMPL),
        signature_algo=algo_name,
        current_tcb=_u64(data, off.CURRENT_TCB),
        platform_info=_u64(data, off.PLATFORM_INFO),
        signer_info=signer_info,
        signing_key=signing_key,
        mask_chip_key=bool(signer_info >> off.SIGNER_MASK_CHIP_KEY_BIT & 1),
        author_key_en=bool(signer_info >> off.SIGNER_AUTHOR_KEY_EN_BIT & 1),
        report_data=_bytes(data, off.REPORT_DATA, 64),
        measurement=_bytes(data, off.MEASUREMENT, 48),
        host_data=_bytes(data, off.HOST_DATA, 32),
        id_key_digest=_bytes(data, off.ID_KEY_DIGEST, 48),
        author_key_digest=_bytes(data, off.AUTHOR_KEY_DIGEST, 48),
        report_id=_bytes(data, off.REPORT_ID, 32),
        report_id_ma=_bytes(data, off.REPORT_ID_MA, 32),
        reported_tcb=_u64(data, off.REPORTED_TCB),
        cpuid=cpuid,
        product=product,
        chip_id=_bytes(data, off.CHIP_ID, 64),
        committed_tcb=_u64(data, off.COMMITTED_TCB),
        current_version=(
            data[off.CURRENT_MAJOR],
            data[off.CURRENT_MINOR],
            data[off.CURRENT_BUILD],
        ),
        committed_version=(
            data[off.COMMITTED_MAJOR],
            data[off.COMMITTED_MINOR],
            data[off.COMMITTED_BUILD],
        ),
        launch_tcb=_u64(data, off.LAUNCH_TCB),
        launch_mit_vector=_u64(data, off.LAUNCH_MIT_VECTOR) if has_mit else None,
        current_mit_vector=_u64(data, off.CURRENT_MIT_VECTOR) if has_mit else None,
        signature_r=_little_endian(data, off.SIGNATURE_R, off.ECDSA_COMPONENT_SIZE),
        signature_s=_little_endian(data, off.SIGNATURE_S, off.ECDSA_COMPONENT_SIZE),
        raw=data,
    )
