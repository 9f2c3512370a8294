"""Recognise what a file is from its bytes, so commands can refuse the wrong kind early."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

PARQUET_MAGIC = b"PAR1"
ENCRYPTED_PARQUET_MAGIC = b"PARE"
SEALED_FILE_MAGIC = b"WBSEALF1"


class Kind(StrEnum):
    # Values read as the object of "is ...", article included.
    PARQUET = "a Parquet table"
    SEALED_TABLE = "a sealed Parquet table"
    SEALED_FILE = "a sealed file"
    CSV = "a CSV table"
    ONNX = "an ONNX model"
    TRUNCATED_PARQUET = "a truncated Parquet file (its footer is missing)"
    UNKNOWN = "an unrecognised file"


def _edges(path: Path, size: int) -> tuple[bytes, bytes]:
    with path.open("rb") as handle:
        head = handle.read(size)
        handle.seek(max(0, path.stat().st_size - size))
        return head, handle.read(size)


# ModelProto's top-level fields as (field number, wire type): 0 varint, 2 length-delimited.
_ONNX_MODEL_FIELDS = frozenset(
    {(1, 0), (2, 2), (3, 2), (4, 2), (5, 0), (6, 2), (7, 2), (8, 2), (14, 2), (20, 2),
     (25, 2), (26, 2)}
)
_MAX_TOP_LEVEL_FIELDS = 4096


def _varint(handle: BinaryIO) -> int | None:
    value = shift = 0
    while shift < 64:
        byte = handle.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _looks_like_onnx(path: Path) -> bool:
    """Sniff an ONNX model without parsing its (possibly huge) graph.

    Walks only the top-level protobuf framing of ModelProto: ir_version comes first, every
    field is one ModelProto has, and the last field ends exactly at the end of the file (so
    a truncated model is caught). The graph itself is parsed by onnxruntime when loaded;
    a full parse here would cost more than encrypting the file.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        for index in range(_MAX_TOP_LEVEL_FIELDS):
            if handle.tell() == size:
                return index > 1
            tag = _varint(handle)
            if tag is None or (tag >> 3, tag & 7) not in _ONNX_MODEL_FIELDS:
                return False
            if index == 0 and tag != 0x08:
                return False
            length = _varint(handle)
            if length is None:
                return False
            if tag & 7 == 2:
                if handle.tell() + length > size:
                    return False
                handle.seek(length, 1)
    return False


def _looks_like_csv(path: Path) -> bool:
    with path.open("rb") as handle:
        sample = handle.read(64 * 1024)
    if not sample or b"\x00" in sample:
        return False
    try:
        first_line = sample.decode("utf-8").splitlines()[0]
    except (UnicodeDecodeError, IndexError):
        return False
    return "," in first_line


def detect(path: str | Path) -> Kind:
    """Classify ``path``; raises OSError if it cannot be read."""
    target = Path(path)
    head, tail = _edges(target, 8)
    if head.startswith(SEALED_FILE_MAGIC):
        return Kind.SEALED_FILE
    if head.startswith(PARQUET_MAGIC) and tail.endswith(PARQUET_MAGIC):
        return Kind.PARQUET
    if head.startswith(ENCRYPTED_PARQUET_MAGIC) and tail.endswith(ENCRYPTED_PARQUET_MAGIC):
        return Kind.SEALED_TABLE
    if head.startswith((PARQUET_MAGIC, ENCRYPTED_PARQUET_MAGIC)):
        return Kind.TRUNCATED_PARQUET
    if target.suffix.lower() == ".csv" and _looks_like_csv(target):
        return Kind.CSV
    if _looks_like_onnx(target):
        return Kind.ONNX
    return Kind.UNKNOWN
