"""A strict DER reader for the few universal types certificate extensions use.

Definite, minimal lengths only; every value must be read whole. Small on purpose: the
SGX extension of a PCK certificate is a flat grammar, and decoding it with a general ASN.1
library dominated a first verification's time.
"""

from __future__ import annotations

SEQUENCE = 0x30
OCTET_STRING = 0x04
INTEGER = 0x02
ENUMERATED = 0x0A
BOOLEAN = 0x01
OID = 0x06


class DerError(ValueError):
    """Not valid DER (what and where are in the message)."""


def read_tlv(data: bytes, at: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, offset after it) of the element at ``at``."""
    if at + 2 > len(data):
        raise DerError("truncated element")
    tag, first = data[at], data[at + 1]
    at += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or at + count > len(data):
            raise DerError("bad length")
        size = int.from_bytes(data[at:at + count], "big")
        if size < 0x80 or data[at] == 0:
            raise DerError("length not in its shortest form")
        at += count
    end = at + size
    if end > len(data):
        raise DerError("element longer than its data")
    return tag, data[at:end], end


def single(data: bytes, tag: int, what: str) -> bytes:
    """The value of ``data``, which must be exactly one element with ``tag``."""
    found, value, end = read_tlv(data)
    if found != tag:
        raise DerError(f"{what} expected (tag 0x{tag:02x}), found tag 0x{found:02x}")
    if end != len(data):
        raise DerError("trailing bytes")
    return value


def oid_text(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    arcs, current = [], 0
    for byte in value:
        if current == 0 and byte == 0x80:
            raise DerError("OBJECT IDENTIFIER arc not minimal")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in (first, arcs[0] - 40 * first, *arcs[1:]))


def integer(value: bytes) -> int:
    """A signed INTEGER or ENUMERATED value, minimal encoding."""
    if not value:
        raise DerError("empty INTEGER")
    if len(value) > 1 and ((value[0] == 0 and not value[1] & 0x80)
                           or (value[0] == 0xFF and value[1] & 0x80)):
        raise DerError("INTEGER not minimal")
    return int.from_bytes(value, "big", signed=True)


def boolean(value: bytes) -> bool:
    if value not in (b"\x00", b"\xff"):
        raise DerError("BOOLEAN is not 0x00 or 0xFF")
    return value == b"\xff"
