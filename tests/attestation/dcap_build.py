"""Edit real DCAP quotes and collateral folders for tests.

Every edit starts from a real vector and changes one thing, fixing up the length fields
around it, so a test reaches the check it means to reach. Nothing here signs anything:
an edited quote can only pass the checks that do not cover the edited bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

from workbench.attestation.formats import dcap_offsets as off
from workbench.attestation.formats.dcap import parse_quote

QUOTES = {
    "sgx-v3": "sgx/trustee-occlum-quote-v3.dat",
    "tdx-v4": "tdx/go-tdx-guest-quote-v4.dat",
    "tdx-v5": "tdx/go-tdx-guest-quote-v5.dat",
    "trustee-tdx-v4": "tdx/trustee-quote-v4.dat",
    "trustee-tdx-v5": "tdx/trustee-quote-v5.dat",
}
TDX_COLLATERAL_FILES = (
    "sample_tcbInfo_response",
    "sample_tcbinfo_response_v5",
    "sample_qeIdentity_response",
    "tcbInfoIssuerChain.pem",
    "qeIdentityIssuerChain.pem",
    "pckCrlIssuerChain.pem",
    "pckcrl",
    "rootcrl.der",
)


def body_end(data: bytes) -> int:
    return len(parse_quote(data).signed_data)


def signature_data_at(data: bytes) -> int:
    """Offset of the signature data (after its u32 length)."""
    return body_end(data) + off.SIGNATURE_DATA_SIZE_FIELD


def qe_block_at(data: bytes) -> int:
    """Offset of the QE report certification data (the QE report itself)."""
    quote = parse_quote(data)
    at = signature_data_at(data) + off.SIG_AFTER_KEY
    return at if quote.version == 3 else at + off.CERT_DATA


def set_u16(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<H", value) + data[at + 2 :]


def set_u32(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def replace_bytes(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


def with_certification(data: bytes, payload: bytes, cert_type: int = 5) -> bytes:
    """Replace the innermost certification data and fix every enclosing length."""
    quote = parse_quote(data)
    data = data[: quote.size]
    old = len(quote.certification.data)
    inner_header = quote.size - old - off.CERT_DATA
    grow = len(payload) - old
    out = data[:inner_header] + struct.pack("<HI", cert_type, len(payload)) + payload
    sig_len_at = body_end(data)
    out = set_u32(out, sig_len_at, struct.unpack_from("<I", data, sig_len_at)[0] + grow)
    if quote.version > 3:
        outer = sig_len_at + off.SIGNATURE_DATA_SIZE_FIELD + off.SIG_AFTER_KEY
        outer_size = struct.unpack_from("<I", data, outer + off.CERT_DATA_SIZE)[0]
        out = set_u32(out, outer + off.CERT_DATA_SIZE, outer_size + grow)
    return out


def collateral_dir(
    target: Path,
    source: Path,
    *,
    omit: tuple[str, ...] = (),
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
) -> Path:
    """A folder with the files of ``source`` (symlinked), some omitted or replaced."""
    target.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    for entry in sorted(source.iterdir()):
        if entry.name in omit:
            continue
        if entry.name in replace:
            (target / entry.name).write_bytes(replace[entry.name])
        else:
            (target / entry.name).symlink_to(entry)
    for name, content in (add or {}).items():
        (target / name).write_bytes(content)
    return target
