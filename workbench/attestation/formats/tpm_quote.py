"""TPM 2.0 quotes: the signed TPMS_ATTEST, its PCR selection, and the shapes that carry them.

A quote travels as three parts: the RSA signature, the TPMS_ATTEST message it signs, and the
PCR values the message's digest covers. Two carriers are read here: kinvolk's bincode
``Quote`` (u64-length-prefixed signature and message, then u64 count of 32-byte PCR values)
and Trustee's JSON ``tpm_quote`` (hex strings in v1/v2, lists of byte values in v0). No
cryptography: the signature, the nonce and the PCR digest are checked by
``workbench.attestation.verify.tpm_quote``.

TPMS_ATTEST (TPM 2.0 Library, Part 2, 10.12.12) is big-endian and variable-length after its
first six bytes; the fixed parts have one constant each below, the rest are TPM2B fields
(u16 size, then bytes) read in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from workbench.attestation.formats.errors import MalformedEvidence

# --- TPMS_ATTEST ------------------------------------------------------------------------------
MAGIC = 0  # u32, TPM_GENERATED_VALUE
TYPE = 4  # u16, TPMI_ST_ATTEST
QUALIFIED_SIGNER = 6  # TPM2B_NAME, then in order:
# extraData TPM2B_DATA; clockInfo (clock u64, resetCount u32, restartCount u32, safe u8);
# firmwareVersion u64; TPMS_QUOTE_INFO (TPML_PCR_SELECTION, pcrDigest TPM2B_DIGEST).
CLOCK_INFO = struct.Struct(">QIIB")
FIRMWARE_VERSION = struct.Struct(">Q")
PCR_SELECTION_COUNT = struct.Struct(">I")
PCR_SELECTION_HEAD = struct.Struct(">HB")  # hash algorithm, sizeofSelect

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_QUOTE = 0x8018
# TPM_ALG_ID -> (hashlib name, digest size) for the PCR banks a quote may select.
HASH_ALGORITHMS: dict[int, tuple[str, int]] = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
}
# A TPM has 24 PCRs (PC Client profile): a selection is at most 3 bytes, and only the
# maximum digest size (64) fits in extraData (TPM2B_DATA holds a TPMT_HA).
PCR_COUNT = 24
MAX_SELECT_BYTES = 4
MAX_EXTRA_DATA = 64
MAX_PCR_BANKS = 16

# --- kinvolk bincode Quote -------------------------------------------------------------------
BINCODE_LENGTH = struct.Struct("<Q")
BINCODE_PCR_SIZE = 32  # the SHA-256 bank
MAX_QUOTE_PART = 64 * 1024


@dataclass(frozen=True)
class PcrSelection:
    """One bank of a TPML_PCR_SELECTION: its hash algorithm and the selected PCR indices."""

    hash_alg: int
    hash_name: str
    digest_size: int
    pcrs: tuple[int, ...]


@dataclass(frozen=True)
class TpmsAttest:
    """A parsed quote message (TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE)."""

    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    pcr_selection: tuple[PcrSelection, ...]
    pcr_digest: bytes
    raw: bytes = field(repr=False)

    @property
    def selected(self) -> tuple[tuple[PcrSelection, int], ...]:
        """Every selected (bank, PCR index), in the order the digest hashes them."""
        return tuple((bank, index) for bank in self.pcr_selection for index in bank.pcrs)


@dataclass(frozen=True)
class TpmQuote:
    """A signature, the TPMS_ATTEST it signs, and the PCR values given with it."""

    signature: bytes
    message: bytes
    pcrs: tuple[bytes, ...]
    attest: TpmsAttest

    @property
    def pcr_values(self) -> dict[int, bytes]:
        """PCR index -> value for the selected PCRs (values in selection order)."""
        return {index: value for (_, index), value in zip(self.attest.selected, self.pcrs,
                                                          strict=False)}


def _bad(field_name: str, problem: str) -> MalformedEvidence:
    return MalformedEvidence(f"TPM quote {field_name}: {problem}")


class _Reader:
    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at

    def take(self, size: int, what: str) -> bytes:
        if self.at + size > len(self.data):
            raise _bad(what, f"needs {size} bytes at offset {self.at}; the message ends at "
                       f"{len(self.data)}")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def unpack(self, layout: struct.Struct, what: str) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size, what))

    def tpm2b(self, what: str, limit: int | None = None) -> bytes:
        (size,) = struct.unpack(">H", self.take(2, what))
        if limit is not None and size > limit:
            raise _bad(what, f"{size} bytes is more than the {limit} a TPM allows")
        return self.take(size, what)


def _selection(reader: _Reader) -> tuple[PcrSelection, ...]:
    (count,) = reader.unpack(PCR_SELECTION_COUNT, "pcrSelect count")
    if count > MAX_PCR_BANKS:
        raise _bad("pcrSelect count", f"{count} banks is more than {MAX_PCR_BANKS}")
    banks = []
    for _ in range(count):
        alg, size = reader.unpack(PCR_SELECTION_HEAD, "pcrSelect bank")
        if alg not in HASH_ALGORITHMS:
            raise _bad("pcrSelect hash", f"algorithm 0x{alg:04x} is not SHA-1/256/384/512")
        if size > MAX_SELECT_BYTES:
            raise _bad("pcrSelect sizeofSelect", f"{size} is more than {MAX_SELECT_BYTES}")
        bitmap = reader.take(size, "pcrSelect bitmap")
        indices = tuple(i for i in range(size * 8) if bitmap[i // 8] >> (i % 8) & 1)
        if any(i >= PCR_COUNT for i in indices):
            raise _bad("pcrSelect bitmap", f"selects PCR {max(indices)}; a TPM has {PCR_COUNT}")
        name, digest = HASH_ALGORITHMS[alg]
        banks.append(PcrSelection(alg, name, digest, indices))
    return tuple(banks)


def parse_attest(message: bytes) -> TpmsAttest:
    """Parse a TPMS_ATTEST quote message; trailing bytes are refused."""
    data = bytes(message)
    if len(data) < QUALIFIED_SIGNER:
        raise _bad("message", f"{len(data)} bytes is too short for a TPMS_ATTEST")
    (magic,) = struct.unpack_from(">I", data, MAGIC)
    if magic != TPM_GENERATED_VALUE:
        raise _bad("magic", f"0x{magic:08x} is not TPM_GENERATED_VALUE (0xff544347): the "
                   "message was not made by a TPM")
    (kind,) = struct.unpack_from(">H", data, TYPE)
    if kind != TPM_ST_ATTEST_QUOTE:
        raise _bad("type", f"0x{kind:04x} is not TPM_ST_ATTEST_QUOTE (0x8018)")
    reader = _Reader(data, QUALIFIED_SIGNER)
    signer = reader.tpm2b("qualifiedSigner")
    extra = reader.tpm2b("extraData", MAX_EXTRA_DATA)
    clock, resets, restarts, safe = reader.unpack(CLOCK_INFO, "clockInfo")
    (firmware,) = reader.unpack(FIRMWARE_VERSION, "firmwareVersion")
    selection = _selection(reader)
    digest = reader.tpm2b("pcrDigest", 64)
    if reader.at != len(data):
        raise _bad("message", f"{len(data) - reader.at} trailing bytes after pcrDigest")
    return TpmsAttest(
        qualified_signer=signer, extra_data=extra, clock=clock, reset_count=resets,
        restart_count=restarts, safe=bool(safe), firmware_version=firmware,
        pcr_selection=selection, pcr_digest=digest, raw=data,
    )


def make_quote(signature: bytes, message: bytes, pcrs: list[bytes] | tuple[bytes, ...]) -> TpmQuote:
    """Check the parts fit together (one value per selected PCR, of the bank's size)."""
    if not signature:
        raise _bad("signature", "is empty")
    attest = parse_attest(message)
    selected = attest.selected
    if len(pcrs) != len(selected):
        raise _bad("pcrs", f"{len(pcrs)} PCR values given for {len(selected)} selected PCRs")
    for (bank, index), value in zip(selected, pcrs, strict=True):
        if len(value) != bank.digest_size:
            raise _bad("pcrs", f"PCR {index} value is {len(value)} bytes; the {bank.hash_name} "
                       f"bank's are {bank.digest_size}")
    return TpmQuote(bytes(signature), bytes(message), tuple(bytes(p) for p in pcrs), attest)


def parse_bincode_quote(data: bytes) -> TpmQuote:
    """Parse kinvolk/azure-cvm-tooling's bincode ``Quote`` (signature, message, pcrs)."""
    data = bytes(data)
    at = 0

    def length(what: str) -> int:
        nonlocal at
        if at + BINCODE_LENGTH.size > len(data):
            raise _bad(what, f"length missing at offset {at} (the quote is {len(data)} bytes)")
        (value,) = BINCODE_LENGTH.unpack_from(data, at)
        at += BINCODE_LENGTH.size
        return int(value)

    def blob(what: str) -> bytes:
        nonlocal at
        size = length(what)
        if size > MAX_QUOTE_PART or at + size > len(data):
            raise _bad(what, f"{size} bytes run past the end of the quote ({len(data)} bytes)")
        chunk = data[at:at + size]
        at += size
        return chunk

    signature = blob("signature")
    message = blob("message")
    count = length("pcrs")
    if count > PCR_COUNT * MAX_PCR_BANKS or at + count * BINCODE_PCR_SIZE != len(data):
        raise _bad("pcrs", f"{count} values of {BINCODE_PCR_SIZE} bytes do not fill the "
                   f"{len(data) - at} bytes left")
    pcrs = [data[at + i * BINCODE_PCR_SIZE:at + (i + 1) * BINCODE_PCR_SIZE]
            for i in range(count)]
    return make_quote(signature, message, pcrs)


def _octets(value: Any, what: str) -> bytes:
    # v1/v2 write hex strings; v0 (serde's default for Vec<u8>) lists of byte values.
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _bad(what, "is not a hex string") from None
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in value):
        return bytes(value)
    raise _bad(what, "is neither a hex string nor a list of byte values")


def quote_from_json(document: Any) -> TpmQuote:
    """Read Trustee's ``tpm_quote`` object: ``signature``, ``message``, ``pcrs``."""
    if not isinstance(document, dict):
        raise _bad("tpm_quote", "is not a JSON object")
    missing = [k for k in ("signature", "message", "pcrs") if k not in document]
    if missing:
        raise _bad("tpm_quote", f"lacks {', '.join(missing)}")
    unknown = sorted(set(document) - {"signature", "message", "pcrs"})
    if unknown:
        raise _bad("tpm_quote", f"unknown member(s) {', '.join(unknown)}")
    pcrs = document["pcrs"]
    if not isinstance(pcrs, list):
        raise _bad("pcrs", "is not a list")
    return make_quote(
        _octets(document["signature"], "signature"),
        _octets(document["message"], "message"),
        [_octets(p, f"pcrs[{i}]") for i, p in enumerate(pcrs)],
    )
