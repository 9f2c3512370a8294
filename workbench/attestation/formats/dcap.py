"""Intel DCAP quotes as typed values: SGX ECDSA quote v3, SGX/TDX quote v4 and v5.

``parse_quote`` checks structure only (sizes, versions, types, lengths that must agree);
it does no cryptography. It raises :class:`MalformedEvidence` and nothing else.

Trailing bytes: a quote often arrives in a larger buffer (the TDX guest driver, the
Intel QGS and go-tdx-guest's own test vector pad it), so bytes after the signature data
are tolerated and counted in ``Quote.trailing_size``; they are covered by no signature
and never read. The whole input is capped at :data:`MAX_QUOTE_SIZE`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from workbench.attestation.formats import dcap_offsets as off
from workbench.attestation.formats.errors import MalformedEvidence

# Real quotes are about 5 KB (most of it the PEM chain); anything this large is not a quote.
MAX_QUOTE_SIZE = 64 * 1024

ATTESTATION_KEY_ECDSA_P256 = 2
ATTESTATION_KEY_NAMES = {2: "ECDSA-256-with-P-256", 3: "ECDSA-384-with-P-384"}

TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
TEE_NAMES = {TEE_TYPE_SGX: "sgx", TEE_TYPE_TDX: "tdx"}

# v5 body types and what each holds: (tee type, body size)
BODY_SGX_ENCLAVE_REPORT = 1
BODY_TD_REPORT10 = 2
BODY_TD_REPORT15 = 3
V5_BODY_TYPES: dict[int, tuple[int, int]] = {
    BODY_SGX_ENCLAVE_REPORT: (TEE_TYPE_SGX, off.ENCLAVE_REPORT_SIZE),
    BODY_TD_REPORT10: (TEE_TYPE_TDX, off.TD_REPORT10_SIZE),
    BODY_TD_REPORT15: (TEE_TYPE_TDX, off.TD_REPORT15_SIZE),
}
# v3 and v4 have no descriptor: the body type follows from the TEE type.
V4_BODY_TYPES: dict[int, int] = {
    TEE_TYPE_SGX: BODY_SGX_ENCLAVE_REPORT,
    TEE_TYPE_TDX: BODY_TD_REPORT10,
}
BODY_SIZES = {body: size for body, (_tee, size) in V5_BODY_TYPES.items()}

# Which TEE types each quote version may carry.
VERSION_TEES: dict[int, frozenset[int]] = {
    3: frozenset({TEE_TYPE_SGX}),
    4: frozenset({TEE_TYPE_SGX, TEE_TYPE_TDX}),
    5: frozenset({TEE_TYPE_SGX, TEE_TYPE_TDX}),
}

CERT_PPID_CLEARTEXT = 1
CERT_PPID_RSA2048 = 2
CERT_PPID_RSA3072 = 3
CERT_PCK_LEAF = 4
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6
CERT_PLATFORM_MANIFEST = 7
CERT_TYPE_NAMES = {
    CERT_PPID_CLEARTEXT: "PPID in clear text",
    CERT_PPID_RSA2048: "PPID encrypted with RSA-2048-OAEP",
    CERT_PPID_RSA3072: "PPID encrypted with RSA-3072-OAEP",
    CERT_PCK_LEAF: "PCK leaf certificate",
    CERT_PCK_CHAIN: "PCK certificate chain",
    CERT_QE_REPORT: "QE report certification data",
    CERT_PLATFORM_MANIFEST: "platform manifest",
}
# Types a quote may carry directly under its signature data: v3 carries the QE report
# itself, so 6 would be a nesting error there; v4/v5 always wrap in type 6.
V3_CERT_TYPES = frozenset(CERT_TYPE_NAMES) - {CERT_QE_REPORT}
INNER_CERT_TYPES = V3_CERT_TYPES


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class EnclaveReport:
    """An SGX REPORT body: the v3/v4/v5 SGX quote body, and every QE report."""

    cpu_svn: bytes
    misc_select: bytes
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes
    raw: bytes

    @property
    def debug(self) -> bool:
        return bool(self.attributes[0] & off.ENCLAVE_ATTRIBUTE_DEBUG)


@dataclass(frozen=True)
class TdReport:
    """A TD quote body: TDX 1.0 (``tee_tcb_svn2`` and ``mr_servicetd`` None) or 1.5."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes
    raw: bytes
    tee_tcb_svn2: bytes | None = None
    mr_servicetd: bytes | None = None

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes[0] & off.TD_ATTRIBUTE_DEBUG)


@dataclass(frozen=True)
class CertificationData:
    """Certification data of a type other than 6: ``data`` is the payload as carried."""

    type: int
    data: bytes

    @property
    def type_name(self) -> str:
        return CERT_TYPE_NAMES.get(self.type, f"unknown type {self.type}")


@dataclass(frozen=True)
class Quote:
    header: QuoteHeader
    body_type: int
    body: EnclaveReport | TdReport
    signed_data: bytes  # header and body: what the attestation key signs
    signature: bytes  # r || s
    attestation_key: bytes  # x || y
    qe_report: EnclaveReport
    qe_report_signature: bytes  # r || s, by the PCK key
    qe_auth_data: bytes
    certification: CertificationData  # for v4/v5, the data inside type 6
    outer_certification_type: int | None  # 6 for v4/v5, None for v3
    size: int  # bytes that belong to the quote
    trailing_size: int  # bytes after it, ignored

    @property
    def version(self) -> int:
        return self.header.version

    @property
    def tee(self) -> str:
        return TEE_NAMES[self.header.tee_type]


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from("<H", data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise MalformedEvidence(f"quote truncated: {what} needs {end} bytes, got {len(data)}")


def _fields(raw: bytes, table: tuple[tuple[str, int, int], ...]) -> dict[str, bytes | int]:
    out: dict[str, bytes | int] = {}
    for name, at, size in table:
        chunk = raw[at : at + size]
        # 2-byte fields are little-endian counters (svn, prod id); wider ones stay bytes.
        out[name] = int.from_bytes(chunk, "little") if size == 2 else chunk
    return out


def parse_header(data: bytes) -> QuoteHeader:
    _need(data, off.HEADER_SIZE, "the header")
    values = _fields(data, off.HEADER_FIELDS)
    values["tee_type"] = _u32(data, off.HEADER_TEE_TYPE)
    return QuoteHeader(**values)  # type: ignore[arg-type]


def parse_enclave_report(raw: bytes) -> EnclaveReport:
    if len(raw) != off.ENCLAVE_REPORT_SIZE:
        raise MalformedEvidence(
            f"enclave report is {len(raw)} bytes, expected {off.ENCLAVE_REPORT_SIZE}"
        )
    return EnclaveReport(**_fields(raw, off.ENCLAVE_REPORT_FIELDS), raw=raw)  # type: ignore[arg-type]


def parse_td_report(raw: bytes) -> TdReport:
    if len(raw) == off.TD_REPORT10_SIZE:
        table = off.TD_REPORT10_FIELDS
    elif len(raw) == off.TD_REPORT15_SIZE:
        table = off.TD_REPORT10_FIELDS + off.TD_REPORT15_EXTRA_FIELDS
    else:
        raise MalformedEvidence(
            f"TD report is {len(raw)} bytes, expected {off.TD_REPORT10_SIZE} (TDX 1.0) "
            f"or {off.TD_REPORT15_SIZE} (TDX 1.5)"
        )
    return TdReport(**_fields(raw, table), raw=raw)  # type: ignore[arg-type]


def _parse_body(raw: bytes, body_type: int) -> EnclaveReport | TdReport:
    if body_type == BODY_SGX_ENCLAVE_REPORT:
        return parse_enclave_report(raw)
    return parse_td_report(raw)


def _locate_body(data: bytes, header: QuoteHeader) -> tuple[int, int, int]:
    """Return (body type, body offset, body size) for this version and TEE type."""
    if header.version in (3, 4):
        body_type = V4_BODY_TYPES[header.tee_type]
        return body_type, off.HEADER_SIZE, BODY_SIZES[body_type]
    _need(data, off.V5_BODY, "the v5 body descriptor")
    body_type = _u16(data, off.V5_BODY_TYPE)
    body_size = _u32(data, off.V5_BODY_SIZE)
    if body_type not in V5_BODY_TYPES:
        raise MalformedEvidence(f"quote v5 body type {body_type} is unknown (expected 1, 2 or 3)")
    tee, expected_size = V5_BODY_TYPES[body_type]
    if tee != header.tee_type:
        raise MalformedEvidence(
            f"quote v5 body type {body_type} does not belong to TEE type {header.tee_type:#x}"
        )
    if body_size != expected_size:
        raise MalformedEvidence(
            f"quote v5 body type {body_type} declares {body_size} bytes, expected {expected_size}"
        )
    return body_type, off.V5_BODY, body_size


def _certification(data: bytes, at: int, end: int, what: str) -> tuple[int, bytes]:
    """Read one certification data block that must end exactly at ``end``."""
    if end - at < off.CERT_DATA:
        raise MalformedEvidence(f"{what}: no room for the certification data header")
    cert_type = _u16(data, at + off.CERT_DATA_TYPE)
    size = _u32(data, at + off.CERT_DATA_SIZE)
    payload_at = at + off.CERT_DATA
    if payload_at + size != end:
        raise MalformedEvidence(
            f"{what}: certification data declares {size} bytes but {end - payload_at} remain"
        )
    return cert_type, data[payload_at:end]


def _qe_report_block(
    data: bytes, at: int, end: int, what: str
) -> tuple[EnclaveReport, bytes, bytes, CertificationData]:
    """QE report, its signature, QE auth data and the certification data that follows."""
    auth_size_at = at + off.QE_CERT_AUTH_DATA_SIZE
    if end < auth_size_at + 2:
        raise MalformedEvidence(f"{what}: too short for a QE report and its signature")
    qe_report = parse_enclave_report(
        data[at + off.QE_CERT_QE_REPORT : at + off.ENCLAVE_REPORT_SIZE]
    )
    sig_at = at + off.QE_CERT_QE_REPORT_SIGNATURE
    qe_signature = data[sig_at : sig_at + off.ECDSA_SIGNATURE_SIZE]
    auth_size = _u16(data, auth_size_at)
    auth_at = at + off.QE_CERT_AUTH_DATA
    if auth_at + auth_size > end:
        raise MalformedEvidence(f"{what}: QE auth data declares {auth_size} bytes, past the end")
    auth_data = data[auth_at : auth_at + auth_size]
    cert_type, payload = _certification(data, auth_at + auth_size, end, what)
    if cert_type not in INNER_CERT_TYPES:
        raise MalformedEvidence(f"{what}: certification data type {cert_type} is not allowed here")
    return qe_report, qe_signature, auth_data, CertificationData(cert_type, payload)


def parse_quote(data: bytes) -> Quote:
    """Parse a DCAP quote. Raises :class:`MalformedEvidence` on any structural problem."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence(f"quote must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise MalformedEvidence("quote is empty")
    if len(data) > MAX_QUOTE_SIZE:
        raise MalformedEvidence(
            f"quote is {len(data)} bytes, more than the {MAX_QUOTE_SIZE} a DCAP quote can be"
        )
    header = parse_header(data)
    if header.version not in VERSION_TEES:
        raise MalformedEvidence(f"quote version {header.version} is not a DCAP quote (3, 4 or 5)")
    if header.attestation_key_type != ATTESTATION_KEY_ECDSA_P256:
        name = ATTESTATION_KEY_NAMES.get(header.attestation_key_type, "unknown")
        raise MalformedEvidence(
            f"attestation key type {header.attestation_key_type} ({name}) is not supported: "
            "only ECDSA-256-with-P-256 quotes exist in practice"
        )
    if header.tee_type not in VERSION_TEES[header.version]:
        raise MalformedEvidence(
            f"TEE type {header.tee_type:#x} is not valid in a version {header.version} quote"
        )

    body_type, body_at, body_size = _locate_body(data, header)
    body_end = body_at + body_size
    _need(data, body_end + off.SIGNATURE_DATA_SIZE_FIELD, "the body")
    body = _parse_body(data[body_at:body_end], body_type)

    sig_size = _u32(data, body_end)
    sig_at = body_end + off.SIGNATURE_DATA_SIZE_FIELD
    sig_end = sig_at + sig_size
    if sig_end > len(data):
        raise MalformedEvidence(
            f"quote truncated: signature data declares {sig_size} bytes, "
            f"{len(data) - sig_at} present"
        )
    if sig_size < off.SIG_AFTER_KEY:
        raise MalformedEvidence(f"signature data of {sig_size} bytes is too short")
    signature = data[sig_at + off.SIG_QUOTE_SIGNATURE : sig_at + off.SIG_ATTESTATION_KEY]
    attestation_key = data[sig_at + off.SIG_ATTESTATION_KEY : sig_at + off.SIG_AFTER_KEY]
    rest_at = sig_at + off.SIG_AFTER_KEY

    if header.version == 3:
        outer = None
        qe_report, qe_sig, auth, certification = _qe_report_block(
            data, rest_at, sig_end, "quote v3 signature data"
        )
    else:
        outer, payload = _certification(data, rest_at, sig_end, "quote signature data")
        if outer != CERT_QE_REPORT:
            raise MalformedEvidence(
                f"quote v{header.version} certification data is type {outer}, expected "
                f"{CERT_QE_REPORT} ({CERT_TYPE_NAMES[CERT_QE_REPORT]})"
            )
        payload_at = sig_end - len(payload)
        qe_report, qe_sig, auth, certification = _qe_report_block(
            data, payload_at, sig_end, "QE report certification data"
        )

    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed_data=data[:body_end],
        signature=signature,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_signature=qe_sig,
        qe_auth_data=auth,
        certification=certification,
        outer_certification_type=outer,
        size=sig_end,
        trailing_size=len(data) - sig_end,
    )
