"""Byte layout of Intel DCAP quotes (SGX ECDSA quote v3, TDX/SGX quote v4 and v5).

One constant per field, named after the structure it belongs to; the ``*_FIELDS`` tables
list (name, offset, size) so parsers, tests and documentation read the same numbers. All
integers in a quote are little-endian. Sources: Intel SGX ECDSA Quote Library Reference
(quote v3), Intel TDX DCAP Quote Generation Library and Quote Verification Library (v4, v5).
"""

from __future__ import annotations

# --- Quote header (48 bytes, every version) --------------------------------------------
HEADER_VERSION = 0  # u16
HEADER_ATTESTATION_KEY_TYPE = 2  # u16
HEADER_TEE_TYPE = 4  # u32; "reserved" (zero) in v3, which is SGX-only
HEADER_QE_SVN = 8  # u16; reserved in v4/v5
HEADER_PCE_SVN = 10  # u16; reserved in v4/v5
HEADER_QE_VENDOR_ID = 12  # 16 bytes
HEADER_USER_DATA = 28  # 20 bytes
HEADER_SIZE = 48

HEADER_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("version", HEADER_VERSION, 2),
    ("attestation_key_type", HEADER_ATTESTATION_KEY_TYPE, 2),
    ("tee_type", HEADER_TEE_TYPE, 4),
    ("qe_svn", HEADER_QE_SVN, 2),
    ("pce_svn", HEADER_PCE_SVN, 2),
    ("qe_vendor_id", HEADER_QE_VENDOR_ID, 16),
    ("user_data", HEADER_USER_DATA, 20),
)

# --- Quote v5 body descriptor, right after the header ------------------------------------
V5_BODY_TYPE = HEADER_SIZE  # u16
V5_BODY_SIZE = HEADER_SIZE + 2  # u32
V5_BODY = HEADER_SIZE + 6

# --- SGX enclave report (384 bytes): the v3 quote body and every QE report ---------------
ENCLAVE_REPORT_CPU_SVN = 0  # 16
ENCLAVE_REPORT_MISC_SELECT = 16  # 4 (u32, kept as bytes for masking)
ENCLAVE_REPORT_RESERVED1 = 20  # 12
ENCLAVE_REPORT_ISV_EXT_PROD_ID = 32  # 16
ENCLAVE_REPORT_ATTRIBUTES = 48  # 16 (flags u64 || xfrm u64)
ENCLAVE_REPORT_MR_ENCLAVE = 64  # 32
ENCLAVE_REPORT_RESERVED2 = 96  # 32
ENCLAVE_REPORT_MR_SIGNER = 128  # 32
ENCLAVE_REPORT_RESERVED3 = 160  # 32
ENCLAVE_REPORT_CONFIG_ID = 192  # 64
ENCLAVE_REPORT_ISV_PROD_ID = 256  # u16
ENCLAVE_REPORT_ISV_SVN = 258  # u16
ENCLAVE_REPORT_CONFIG_SVN = 260  # u16
ENCLAVE_REPORT_RESERVED4 = 262  # 42
ENCLAVE_REPORT_ISV_FAMILY_ID = 304  # 16
ENCLAVE_REPORT_REPORT_DATA = 320  # 64
ENCLAVE_REPORT_SIZE = 384

ENCLAVE_REPORT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("cpu_svn", ENCLAVE_REPORT_CPU_SVN, 16),
    ("misc_select", ENCLAVE_REPORT_MISC_SELECT, 4),
    ("isv_ext_prod_id", ENCLAVE_REPORT_ISV_EXT_PROD_ID, 16),
    ("attributes", ENCLAVE_REPORT_ATTRIBUTES, 16),
    ("mr_enclave", ENCLAVE_REPORT_MR_ENCLAVE, 32),
    ("mr_signer", ENCLAVE_REPORT_MR_SIGNER, 32),
    ("config_id", ENCLAVE_REPORT_CONFIG_ID, 64),
    ("isv_prod_id", ENCLAVE_REPORT_ISV_PROD_ID, 2),
    ("isv_svn", ENCLAVE_REPORT_ISV_SVN, 2),
    ("config_svn", ENCLAVE_REPORT_CONFIG_SVN, 2),
    ("isv_family_id", ENCLAVE_REPORT_ISV_FAMILY_ID, 16),
    ("report_data", ENCLAVE_REPORT_REPORT_DATA, 64),
)

# Bit 1 of the attributes flags: the enclave was launched in debug mode.
ENCLAVE_ATTRIBUTE_DEBUG = 0x02

# --- TDX TD report: TDX 1.0 body (584 bytes), TDX 1.5 body (648 bytes) -------------------
TD_REPORT_TEE_TCB_SVN = 0  # 16
TD_REPORT_MR_SEAM = 16  # 48
TD_REPORT_MR_SIGNER_SEAM = 64  # 48
TD_REPORT_SEAM_ATTRIBUTES = 112  # 8
TD_REPORT_TD_ATTRIBUTES = 120  # 8
TD_REPORT_XFAM = 128  # 8
TD_REPORT_MR_TD = 136  # 48
TD_REPORT_MR_CONFIG_ID = 184  # 48
TD_REPORT_MR_OWNER = 232  # 48
TD_REPORT_MR_OWNER_CONFIG = 280  # 48
TD_REPORT_RTMR0 = 328  # 48
TD_REPORT_RTMR1 = 376  # 48
TD_REPORT_RTMR2 = 424  # 48
TD_REPORT_RTMR3 = 472  # 48
TD_REPORT_REPORT_DATA = 520  # 64
TD_REPORT10_SIZE = 584
TD_REPORT_TEE_TCB_SVN2 = 584  # 16, TDX 1.5 only
TD_REPORT_MR_SERVICETD = 600  # 48, TDX 1.5 only
TD_REPORT15_SIZE = 648

TD_REPORT10_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("tee_tcb_svn", TD_REPORT_TEE_TCB_SVN, 16),
    ("mr_seam", TD_REPORT_MR_SEAM, 48),
    ("mr_signer_seam", TD_REPORT_MR_SIGNER_SEAM, 48),
    ("seam_attributes", TD_REPORT_SEAM_ATTRIBUTES, 8),
    ("td_attributes", TD_REPORT_TD_ATTRIBUTES, 8),
    ("xfam", TD_REPORT_XFAM, 8),
    ("mr_td", TD_REPORT_MR_TD, 48),
    ("mr_config_id", TD_REPORT_MR_CONFIG_ID, 48),
    ("mr_owner", TD_REPORT_MR_OWNER, 48),
    ("mr_owner_config", TD_REPORT_MR_OWNER_CONFIG, 48),
    ("rtmr0", TD_REPORT_RTMR0, 48),
    ("rtmr1", TD_REPORT_RTMR1, 48),
    ("rtmr2", TD_REPORT_RTMR2, 48),
    ("rtmr3", TD_REPORT_RTMR3, 48),
    ("report_data", TD_REPORT_REPORT_DATA, 64),
)
TD_REPORT15_EXTRA_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("tee_tcb_svn2", TD_REPORT_TEE_TCB_SVN2, 16),
    ("mr_servicetd", TD_REPORT_MR_SERVICETD, 48),
)

# Bit 0 of TD attributes (TUD.DEBUG): the TD runs in debug mode.
TD_ATTRIBUTE_DEBUG = 0x01

# --- ECDSA-256 quote signature data, after the u32 length that follows the body ----------
SIGNATURE_DATA_SIZE_FIELD = 4  # the u32 length itself
SIG_QUOTE_SIGNATURE = 0  # 64: r || s, big-endian
SIG_ATTESTATION_KEY = 64  # 64: x || y, big-endian (P-256)
SIG_AFTER_KEY = 128  # v3: QE report certification data; v4/v5: certification data

# QE report certification data: the v3 tail, and the payload of certification type 6.
QE_CERT_QE_REPORT = 0  # 384, an enclave report
QE_CERT_QE_REPORT_SIGNATURE = ENCLAVE_REPORT_SIZE  # 64
QE_CERT_AUTH_DATA_SIZE = ENCLAVE_REPORT_SIZE + 64  # u16
QE_CERT_AUTH_DATA = ENCLAVE_REPORT_SIZE + 66  # variable

# Certification data: u16 type, u32 size, then ``size`` bytes.
CERT_DATA_TYPE = 0
CERT_DATA_SIZE = 2
CERT_DATA = 6

ECDSA_SIGNATURE_SIZE = 64
ECDSA_KEY_SIZE = 64
