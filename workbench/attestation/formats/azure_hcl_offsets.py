"""Byte layout of the Azure confidential VM HCL report (vTPM NV index 0x01400001).

The paravisor (HCL, "host compatibility layer") writes one report: a 32-byte attestation
header, the hardware report in a fixed 1184-byte slot (an SEV-SNP ATTESTATION_REPORT fills
it; a 1024-byte TDX TDREPORT leaves the tail zero), then the IGVM request data: five u32s
and the variable data, a UTF-8 JSON "runtime data" document. All integers are little-endian.
Sources: Microsoft's OpenHCL IGVM attestation definitions and kinvolk/azure-cvm-tooling's
``hcl`` module (read, not copied); the field names follow OpenHCL's.
"""

from __future__ import annotations

# --- Attestation header (32 bytes) ---------------------------------------------------------
SIGNATURE = 0x00  # 4 bytes, b"HCLA"
VERSION = 0x04  # u32: 1 (SNP VMs), 2 (seen on TDX VMs)
REPORT_SIZE = 0x08  # u32: bytes of the report proper, header to end of variable data
REQUEST_TYPE = 0x0C  # u32: 2 = key release request (the kind the NV index holds)
STATUS = 0x10  # u32
RESERVED = 0x14  # 12 bytes
HEADER_SIZE = 0x20

HEADER_SIGNATURE = b"HCLA"
SUPPORTED_VERSIONS = (1, 2)

# --- Hardware report slot ------------------------------------------------------------------
HW_REPORT = HEADER_SIZE
HW_REPORT_SLOT = 1184  # max(SNP report 1184, TD report 1024)

# --- IGVM request data, after the slot -------------------------------------------------------
REQUEST_DATA = HW_REPORT + HW_REPORT_SLOT  # 0x4C0
DATA_SIZE = REQUEST_DATA + 0x00  # u32: this block's size, its 20-byte header included
DATA_VERSION = REQUEST_DATA + 0x04  # u32
REPORT_TYPE = REQUEST_DATA + 0x08  # u32: which hardware report fills the slot
HASH_TYPE = REQUEST_DATA + 0x0C  # u32: how report_data hashes the variable data
VARIABLE_DATA_SIZE = REQUEST_DATA + 0x10  # u32
VARIABLE_DATA = REQUEST_DATA + 0x14  # 0x4D4, VARIABLE_DATA_SIZE bytes
REQUEST_DATA_HEADER_SIZE = VARIABLE_DATA - REQUEST_DATA

HEADER_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("signature", SIGNATURE, 4),
    ("version", VERSION, 4),
    ("report_size", REPORT_SIZE, 4),
    ("request_type", REQUEST_TYPE, 4),
    ("status", STATUS, 4),
    ("data_size", DATA_SIZE, 4),
    ("data_version", DATA_VERSION, 4),
    ("report_type", REPORT_TYPE, 4),
    ("hash_type", HASH_TYPE, 4),
    ("variable_data_size", VARIABLE_DATA_SIZE, 4),
)

# REPORT_TYPE -> (name, size of the hardware report in the slot). 1 is a VBS report,
# which no confidential VM produces, so it is not listed.
REPORT_TYPES: dict[int, tuple[str, int]] = {2: ("snp", 1184), 4: ("tdx", 1024)}
# HASH_TYPE -> hash algorithm name (hashlib) and digest size: report_data[0:size] is that
# hash of the variable data.
HASH_TYPES: dict[int, tuple[str, int]] = {1: ("sha256", 32), 2: ("sha384", 48), 3: ("sha512", 64)}

# --- TDX TDREPORT_STRUCT (1024 bytes), what TDG.MR.REPORT returns ---------------------------
# REPORTMACSTRUCT (256 bytes)
TD_REPORT_TYPE = 0x000  # 4 bytes: type (0x81 = TDX), subtype, version, reserved
TD_CPU_SVN = 0x010  # 16
TD_TEE_TCB_INFO_HASH = 0x020  # 48
TD_TEE_INFO_HASH = 0x050  # 48
TD_REPORT_DATA = 0x080  # 64
TD_MAC = 0x0E0  # 32
# TEE_TCB_INFO (239 bytes)
TD_TEE_TCB_INFO = 0x100
TD_TCB_VALID = TD_TEE_TCB_INFO + 0  # 8
TD_TEE_TCB_SVN = TD_TEE_TCB_INFO + 8  # 16
TD_MR_SEAM = TD_TEE_TCB_INFO + 24  # 48
TD_MR_SIGNER_SEAM = TD_TEE_TCB_INFO + 72  # 48
TD_SEAM_ATTRIBUTES = TD_TEE_TCB_INFO + 120  # 8
# TDINFO (512 bytes)
TD_INFO = 0x200
TD_ATTRIBUTES = TD_INFO + 0x000  # 8
TD_XFAM = TD_INFO + 0x008  # 8
TD_MR_TD = TD_INFO + 0x010  # 48
TD_MR_CONFIG_ID = TD_INFO + 0x040  # 48
TD_MR_OWNER = TD_INFO + 0x070  # 48
TD_MR_OWNER_CONFIG = TD_INFO + 0x0A0  # 48
TD_RTMR0 = TD_INFO + 0x0D0  # 48
TD_RTMR1 = TD_INFO + 0x100  # 48
TD_RTMR2 = TD_INFO + 0x130  # 48
TD_RTMR3 = TD_INFO + 0x160  # 48
TD_SERVTD_HASH = TD_INFO + 0x190  # 48, TDX 1.5
TD_REPORT_SIZE = 0x400

TD_REPORT_TYPE_TDX = 0x81
# Bit 0 of the TD attributes (TUD.DEBUG), as in a TD quote body.
TD_ATTRIBUTE_DEBUG = 0x01

# The fields a TD quote body repeats from the TD report it was made from: a TD quote binds a
# TD report when all of these are equal (names as formats.dcap.TdReport names them).
TD_REPORT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("tee_tcb_svn", TD_TEE_TCB_SVN, 16),
    ("mr_seam", TD_MR_SEAM, 48),
    ("mr_signer_seam", TD_MR_SIGNER_SEAM, 48),
    ("seam_attributes", TD_SEAM_ATTRIBUTES, 8),
    ("td_attributes", TD_ATTRIBUTES, 8),
    ("xfam", TD_XFAM, 8),
    ("mr_td", TD_MR_TD, 48),
    ("mr_config_id", TD_MR_CONFIG_ID, 48),
    ("mr_owner", TD_MR_OWNER, 48),
    ("mr_owner_config", TD_MR_OWNER_CONFIG, 48),
    ("rtmr0", TD_RTMR0, 48),
    ("rtmr1", TD_RTMR1, 48),
    ("rtmr2", TD_RTMR2, 48),
    ("rtmr3", TD_RTMR3, 48),
    ("report_data", TD_REPORT_DATA, 64),
)

# --- Runtime data JSON (the variable data) ---------------------------------------------------
AK_KEY_ID = "HCLAkPub"  # the vTPM attestation key, which signs TPM quotes
EK_KEY_ID = "HCLEkPub"  # the vTPM endorsement key (encryption only)
# vm-configuration JSON key -> claim name (booleans the policy can require).
VM_CONFIGURATION_FLAGS: dict[str, str] = {
    "secure-boot": "secure_boot",
    "tpm-enabled": "tpm_enabled",
    "console-enabled": "console_enabled",
    "tpm-persisted": "tpm_persisted",
}
# vm-configuration JSON key -> claim name (informational values).
VM_CONFIGURATION_VALUES: dict[str, str] = {
    "vmUniqueId": "vm_unique_id",
    "root-cert-thumbprint": "root_cert_thumbprint",
    "current-time": "current_time",
}
