"""Recognise what a file is from its bytes, so commands can refuse the wrong kind early."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

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


def _looks_like_onnx(path: Path) -> bool:
    import onnx  # imported lazily: only model sealing needs it

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # any parse failure means "not ONNX"
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


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
