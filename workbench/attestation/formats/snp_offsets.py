"""Byte layout of the AMD SEV-SNP ATTESTATION_REPORT (SEV-SNP Firmware ABI, report table).

One constant per field, then the same fields as a table so tests and tools can walk the
layout. All integers in the report are little-endian. Offsets are the same for every report
version; versions differ only in which reserved bytes later versions gave a meaning to
(see ``RESERVED_BY_VERSION``).
"""

from __future__ import annotations

REPORT_SIZE = 0x4A0

VERSION = 0x000  # u32
GUEST_SVN = 0x004  # u32
POLICY = 0x008  # u64
FAMILY_ID = 0x010  # 16 bytes
IMAGE_ID = 0x020  # 16 bytes
VMPL = 0x030  # u32
SIGNATURE_ALGO = 0x034  # u32
CURRENT_TCB = 0x038  # u64 TCB_VERSION
PLATFORM_INFO = 0x040  # u64
SIGNER_INFO = 0x048  # u32: AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY
RESERVED_SIGNER = 0x04C  # 4 bytes, must be zero
REPORT_DATA = 0x050  # 64 bytes
MEASUREMENT = 0x090  # 48 bytes
HOST_DATA = 0x0C0  # 32 bytes
ID_KEY_DIGEST = 0x0E0  # 48 bytes
AUTHOR_KEY_DIGEST = 0x110  # 48 bytes
REPORT_ID = 0x140  # 32 bytes
REPORT_ID_MA = 0x160  # 32 bytes
REPORTED_TCB = 0x180  # u64 TCB_VERSION
CPUID_FAM_ID = 0x188  # u8, version 3+ (reserved before)
CPUID_MOD_ID = 0x189  # u8, version 3+
CPUID_STEP = 0x18A  # u8, version 3+
CHIP_ID = 0x1A0  # 64 bytes
COMMITTED_TCB = 0x1E0  # u64 TCB_VERSION
CURRENT_BUILD = 0x1E8  # u8
CURRENT_MINOR = 0x1E9  # u8
CURRENT_MAJOR = 0x1EA  # u8
RESERVED_CURRENT = 0x1EB  # 1 byte, must be zero
COMMITTED_BUILD = 0x1EC  # u8
COMMITTED_MINOR = 0x1ED  # u8
COMMITTED_MAJOR = 0x1EE  # u8
RESERVED_COMMITTED = 0x1EF  # 1 byte, must be zero
LAUNCH_TCB = 0x1F0  # u64 TCB_VERSION
LAUNCH_MIT_VECTOR = 0x1F8  # u64, version 5+ (reserved before)
CURRENT_MIT_VECTOR = 0x200  # u64, version 5+
SIGNATURE = 0x2A0  # 512 bytes; ECDSA P-384 uses the first 144

# Inside SIGNATURE for SIGNATURE_ALGO 1 (ECDSA P-384 with SHA-384): R and S are 72-byte
# little-endian integers; the rest of the 512-byte field must be zero.
SIGNATURE_R = SIGNATURE + 0x00
SIGNATURE_S = SIGNATURE + 0x48
ECDSA_COMPONENT_SIZE = 72
ECDSA_SIGNATURE_END = SIGNATURE + 2 * ECDSA_COMPONENT_SIZE

# The signature covers every byte before it.
SIGNED_END = SIGNATURE

# (name, offset, size) for every named field, in report order.
FIELDS: tuple[tuple[str, int, int], ...] = (
    ("version", VERSION, 4),
    ("guest_svn", GUEST_SVN, 4),
    ("policy", POLICY, 8),
    ("family_id", FAMILY_ID, 16),
    ("image_id", IMAGE_ID, 16),
    ("vmpl", VMPL, 4),
    ("signature_algo", SIGNATURE_ALGO, 4),
    ("current_tcb", CURRENT_TCB, 8),
    ("platform_info", PLATFORM_INFO, 8),
    ("signer_info", SIGNER_INFO, 4),
    ("report_data", REPORT_DATA, 64),
    ("measurement", MEASUREMENT, 48),
    ("host_data", HOST_DATA, 32),
    ("id_key_digest", ID_KEY_DIGEST, 48),
    ("author_key_digest", AUTHOR_KEY_DIGEST, 48),
    ("report_id", REPORT_ID, 32),
    ("report_id_ma", REPORT_ID_MA, 32),
    ("reported_tcb", REPORTED_TCB, 8),
    ("cpuid_fam_id", CPUID_FAM_ID, 1),
    ("cpuid_mod_id", CPUID_MOD_ID, 1),
    ("cpuid_step", CPUID_STEP, 1),
    ("chip_id", CHIP_ID, 64),
    ("committed_tcb", COMMITTED_TCB, 8),
    ("current_build", CURRENT_BUILD, 1),
    ("current_minor", CURRENT_MINOR, 1),
    ("current_major", CURRENT_MAJOR, 1),
    ("committed_build", COMMITTED_BUILD, 1),
    ("committed_minor", COMMITTED_MINOR, 1),
    ("committed_major", COMMITTED_MAJOR, 1),
    ("launch_tcb", LAUNCH_TCB, 8),
    ("launch_mit_vector", LAUNCH_MIT_VECTOR, 8),
    ("current_mit_vector", CURRENT_MIT_VECTOR, 8),
    ("signature", SIGNATURE, 512),
)

# Must-be-zero byte ranges (start, end) per report version. Version 3 gave the first three
# bytes after REPORTED_TCB to CPUID; version 5 gave 16 bytes after LAUNCH_TCB to the
# mitigation vectors. The tail of the signature field is checked separately, per algorithm.
_COMMON_RESERVED = (
    (RESERVED_SIGNER, RESERVED_SIGNER + 4),
    (RESERVED_CURRENT, RESERVED_CURRENT + 1),
    (RESERVED_COMMITTED, RESERVED_COMMITTED + 1),
)
RESERVED_BY_VERSION: dict[int, tuple[tuple[int, int], ...]] = {
    2: (*_COMMON_RESERVED, (CPUID_FAM_ID, CHIP_ID), (LAUNCH_MIT_VECTOR, SIGNATURE)),
    3: (*_COMMON_RESERVED, (CPUID_STEP + 1, CHIP_ID), (LAUNCH_MIT_VECTOR, SIGNATURE)),
    4: (*_COMMON_RESERVED, (CPUID_STEP + 1, CHIP_ID), (LAUNCH_MIT_VECTOR, SIGNATURE)),
    5: (*_COMMON_RESERVED, (CPUID_STEP + 1, CHIP_ID), (CURRENT_MIT_VECTOR + 8, SIGNATURE)),
}
SUPPORTED_VERSIONS = tuple(sorted(RESERVED_BY_VERSION))
FIRST_VERSION_WITH_CPUID = 3
FIRST_VERSION_WITH_MIT_VECTORS = 5

# SIGNATURE_ALGO values -> (name, end of the bytes the signature uses inside the field).
SIGNATURE_ALGORITHMS: dict[int, tuple[str, int]] = {
    1: ("ecdsa-p384-sha384", ECDSA_SIGNATURE_END),
}

# SIGNER_INFO bits.
SIGNER_AUTHOR_KEY_EN_BIT = 0
SIGNER_MASK_CHIP_KEY_BIT = 1
SIGNER_SIGNING_KEY_SHIFT = 2
SIGNER_SIGNING_KEY_MASK = 0b111
SIGNER_RESERVED_SHIFT = 5  # bits 31:5 must be zero
# SIGNING_KEY values; 2..6 are reserved.
SIGNING_KEYS: dict[int, str] = {0: "vcek", 1: "vlek", 7: "none"}

# Guest POLICY bits. ABI_MINOR is bits 7:0, ABI_MAJOR bits 15:8; bit 17 must be one and
# bits above the highest defined flag must be zero.
POLICY_ABI_MINOR_SHIFT = 0
POLICY_ABI_MAJOR_SHIFT = 8
POLICY_FLAGS: dict[str, int] = {
    "smt": 16,
    "migrate_ma": 18,
    "debug": 19,
    "single_socket": 20,
    "cxl_allow": 21,
    "mem_aes_256_xts": 22,
    "rapl_dis": 23,
    "ciphertext_hiding_dram": 24,
    "page_swap_disable": 25,
}
POLICY_MUST_BE_ONE_BIT = 17
POLICY_RESERVED_SHIFT = 26  # bits 63:26 must be zero

# PLATFORM_INFO bits (informational: new firmware adds bits, so unknown ones are kept).
PLATFORM_INFO_FLAGS: dict[str, int] = {
    "smt_enabled": 0,
    "tsme_enabled": 1,
    "ecc_enabled": 2,
    "rapl_disabled": 3,
    "ciphertext_hiding_dram_enabled": 4,
    "alias_check_complete": 5,
    "tio_enabled": 7,
}

# TCB_VERSION: which byte of the little-endian u64 holds which security patch level.
# Milan and Genoa: BOOT_LOADER, TEE, four reserved bytes (the VCEK's spl4..spl7), SNP,
# MICROCODE. Turin moved SNP down and added FMC in byte 0.
_MILAN_GENOA_TCB = {
    "bootloader": 0,
    "tee": 1,
    "spl4": 2,
    "spl5": 3,
    "spl6": 4,
    "spl7": 5,
    "snp": 6,
    "microcode": 7,
}
TCB_LAYOUTS: dict[str, dict[str, int]] = {
    "milan": _MILAN_GENOA_TCB,
    "genoa": _MILAN_GENOA_TCB,
    "turin": {"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7},
}
# Components that are reserved placeholders, not security patch levels people read.
TCB_RESERVED_COMPONENTS = frozenset({"spl4", "spl5", "spl6", "spl7"})

# CPUID (version 3+): (family, first model, last model) -> product. Family is the combined
# base+extended family; model the combined extended+base model (Processor Programming
# Reference, "Determining the Product Name").
CPUID_PRODUCTS: tuple[tuple[int, int, int, str], ...] = (
    (0x19, 0x00, 0x0F, "milan"),
    (0x19, 0x10, 0x1F, "genoa"),
    (0x19, 0xA0, 0xAF, "genoa"),
    (0x1A, 0x00, 0x11, "turin"),
)
