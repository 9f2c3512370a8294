"""Sealed tables: Parquet modular encryption (AES_GCM_V1, encrypted footer), two keys.

Identifiers (PHI) are encrypted under ``<dataset>/table-key/phi``; every other column and
the footer under ``<dataset>/table-key/clinical``. A holder of the clinical key alone can
therefore read the features, and only a holder of both can read who the patients are.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pqe

from workbench.errors import InputError, WorkbenchError, about
from workbench.sealing import kms
from workbench.sealing.atomic import atomic_output
from workbench.sealing.formats import Kind, detect
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeySource, KeyUnavailable
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key

ALGORITHM = "AES_GCM_V1"


def read_plain_table(path: Path) -> pa.Table:
    """Load an unencrypted Parquet or CSV file; anything else is refused."""
    try:
        kind = detect(path)
    except OSError as err:
        raise InputError(about(path, f"cannot read ({err.strerror or err})")) from None
    if kind is Kind.PARQUET:
        return pq.read_table(path)
    if kind is Kind.CSV:
        return pacsv.read_csv(path)
    if kind is Kind.SEALED_TABLE:
        raise InputError(about(path, "is already a sealed table"))
    raise InputError(about(path, f"is {kind.value}, not a Parquet or CSV table"))


def encryption_configuration(
    dataset: str, columns: Sequence[str], protect: Sequence[str]
) -> pqe.EncryptionConfiguration:
    missing = [c for c in protect if c not in columns]
    if missing:
        raise InputError(
            f"column(s) to protect not in the table: {', '.join(missing)} "
            f"(columns are: {', '.join(columns)})"
        )
    if not protect:
        raise InputError("name at least one identifier column to protect (--protect)")
    clinical = [c for c in columns if c not in protect]
    column_keys = {table_key(dataset, PHI_ROLE): list(protect)}
    if clinical:
        column_keys[table_key(dataset, CLINICAL_ROLE)] = clinical
    return pqe.EncryptionConfiguration(
        footer_key=table_key(dataset, CLINICAL_ROLE),
        column_keys=column_keys,
        encryption_algorithm=ALGORITHM,
        plaintext_footer=False,
        double_wrapping=True,
        cache_lifetime=kms.CACHE_LIFETIME,
    )


def seal_table(
    source: str | Path,
    out: str | Path,
    *,
    protect: Sequence[str],
    keyring: Keyring,
    dataset: str,
) -> Path:
    """Encrypt ``source`` into ``out``; creates the dataset's keys in ``keyring`` if new."""
    source, out = Path(source), Path(out)
    return seal_arrow_table(read_plain_table(source), out, protect=protect, keyring=keyring,
                            dataset=dataset)


def seal_arrow_table(
    table: pa.Table,
    out: str | Path,
    *,
    protect: Sequence[str],
    keyring: Keyring,
    dataset: str,
) -> Path:
    """Encrypt a table already in memory (``publish`` reads it once to check it first)."""
    out = Path(out)
    config = encryption_configuration(dataset, table.column_names, protect)
    for role in (PHI_ROLE, CLINICAL_ROLE):
        keyring.ensure_aes256(table_key(dataset, role))
    properties = kms.crypto_factory(keyring).file_encryption_properties(
        kms.connection_config(), config
    )
    with atomic_output(out) as handle:
        pq.write_table(table, handle, encryption_properties=properties)
        # The keyring is saved only once the table is written, before the table appears.
        keyring.save()
    return out


@contextlib.contextmanager
def opening_errors(path: Path) -> Iterator[None]:
    """Turn pyarrow's and the key source's failures into one line naming the file."""
    try:
        yield
    except (KeyUnavailable, kms.WrongKey) as err:
        raise WorkbenchError(about(path, str(err))) from None
    except FileNotFoundError:
        raise InputError(about(path, "file not found")) from None
    except (OSError, pa.ArrowException) as err:
        raise WorkbenchError(about(path, _describe_arrow_failure(str(err)))) from None


# pyarrow reports decryption and format failures as OSError text; map them to causes.
_ARROW_FAILURES: tuple[tuple[str, str], ...] = (
    ("decryption", "table is damaged or was tampered with (authentication failed)"),
    ("gcm", "table is damaged or was tampered with (authentication failed)"),
    ("magic bytes", "not a Parquet file, or truncated"),
    ("deserialize", "table is damaged or truncated (metadata unreadable)"),
    ("file size", "table is truncated"),
    ("no decryption found", "table is sealed; a key source is needed to open it"),
)


def _describe_arrow_failure(message: str) -> str:
    lowered = message.lower()
    for needle, cause in _ARROW_FAILURES:
        if needle in lowered:
            return cause
    return f"cannot read table ({message.splitlines()[0]})"


def _check_sealed(path: Path) -> bytes:
    """Refuse anything but a sealed table, including a truncated one, before pyarrow reads;
    return its footer's key material (plaintext JSON, checked to be exactly as sealed)."""
    try:
        kind = detect(path)
    except FileNotFoundError:
        raise InputError(about(path, "file not found")) from None
    except OSError as err:
        raise InputError(about(path, f"cannot read ({err.strerror or err})")) from None
    if kind is Kind.TRUNCATED_PARQUET:
        raise WorkbenchError(about(path, "table is truncated"))
    if kind is not Kind.SEALED_TABLE:
        raise InputError(about(path, f"is {kind.value}, not a sealed table"))
    return _check_footer_key_material(path)


def footer_key_id(path: str | Path) -> str:
    """The master key a sealed table's footer is wrapped under, read without any key.

    Sealing wraps the footer under ``<dataset>/table-key/clinical``, so this says which
    dataset a file was sealed as (the data owner's ``catalog add`` checks it)."""
    return str(json.loads(_check_sealed(Path(path)))["masterKeyID"])


# Everything in a sealed table is authenticated by AES-GCM except the FileCryptoMetaData in
# front of the encrypted footer: Parquet keeps it in plaintext so readers can find the
# footer key. pyarrow reads it leniently (Thrift skips unknown fields and accepts overlong
# varints, JSON allows any spacing, base64 decoders ignore the padding bits of the last
# character), so bytes there can change while the table still opens. A sealed table is
# meant to be exactly what was sealed, so this part must be byte for byte what sealing
# writes; only the random file-unique AAD and the key material's values vary.
#
# Thrift compact bytes of FileCryptoMetaData{1: EncryptionAlgorithm{1: AesGcmV1{
# 2: aad_file_unique (8-byte binary), 3: supply_aad_prefix = false}}, 2: key_metadata}.
_CRYPTO_HEAD = b"\x1c\x1c\x28\x08"
_AAD_FILE_UNIQUE_BYTES = 8
_CRYPTO_KEY_METADATA = b"\x12\x00\x00\x18"
_THRIFT_STOP = b"\x00"
_MODULE_LENGTH = struct.Struct("<I")
_FOOTER_TRAILER = struct.Struct("<I4s")
# Enough for the framing and the key material (about 400 bytes) without reading the footer.
_FOOTER_HEAD_BYTES = 4096

# The key material's fields in the order pyarrow writes them; the fixed ones with their
# value. The others are checked by unwrapping: masterKeyID is the AAD of wrappedKEK,
# keyEncryptionKeyID the AAD of wrappedDEK, and the unwrapped key must decrypt the footer.
_FIXED_KEY_MATERIAL: dict[str, object] = {
    "keyMaterialType": "PKMT1",
    "internalStorage": True,
    "isFooterKey": True,
    "kmsInstanceID": kms.KMS_INSTANCE_ID,
    "kmsInstanceURL": "DEFAULT",
    "doubleWrapping": True,
}
_KEY_MATERIAL_FIELDS = (
    "keyMaterialType",
    "internalStorage",
    "isFooterKey",
    "kmsInstanceID",
    "kmsInstanceURL",
    "masterKeyID",
    "wrappedDEK",
    "doubleWrapping",
    "keyEncryptionKeyID",
    "wrappedKEK",
)
_BASE64_FIELDS = ("wrappedDEK", "keyEncryptionKeyID", "wrappedKEK")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """Decode a varint at ``offset``: (value, end), or None unless minimally encoded."""
    value = 0
    for index, byte in enumerate(data[offset : offset + 5]):
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            end = offset + index + 1
            return (value, end) if data[offset:end] == _encode_varint(value) else None
    return None


def _key_material_bytes(footer_head: bytes, footer_length: int) -> bytes | None:
    """The key material JSON, or None unless the plaintext framing is exactly as sealed."""
    middle = len(_CRYPTO_HEAD) + _AAD_FILE_UNIQUE_BYTES
    if not footer_head.startswith(_CRYPTO_HEAD):
        return None
    if not footer_head.startswith(_CRYPTO_KEY_METADATA, middle):
        return None
    varint = _read_varint(footer_head, middle + len(_CRYPTO_KEY_METADATA))
    if varint is None:
        return None
    length, start = varint
    end = start + length
    module_start = end + len(_THRIFT_STOP) + _MODULE_LENGTH.size
    if module_start > len(footer_head) or footer_head[end : end + 1] != _THRIFT_STOP:
        return None
    (module_length,) = _MODULE_LENGTH.unpack_from(footer_head, end + len(_THRIFT_STOP))
    # The encrypted footer module must fill the rest of the footer: no trailing bytes.
    if module_start + module_length != footer_length:
        return None
    return footer_head[start:end]


def _is_canonical_base64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return base64.b64encode(base64.b64decode(value, validate=True)).decode() == value
    except (binascii.Error, ValueError):
        return False


def _differs(value: object, expected: object) -> bool:
    return type(value) is not type(expected) or value != expected


def _key_material_is_as_sealed(raw: bytes) -> bool:
    try:
        material = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    if not isinstance(material, dict) or tuple(material) != _KEY_MATERIAL_FIELDS:
        return False
    # Re-serialising must give back the same bytes: no other spacing, escapes or duplicates.
    if json.dumps(material, separators=(",", ":")).encode() != raw:
        return False
    # Exact types too: in Python 1 == True, and the JSON would re-serialise the same.
    if any(_differs(material[k], v) for k, v in _FIXED_KEY_MATERIAL.items()):
        return False
    return all(_is_canonical_base64(material[k]) for k in _BASE64_FIELDS)


def _check_footer_key_material(path: Path) -> bytes:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < _FOOTER_TRAILER.size + 4:
            raise WorkbenchError(about(path, "table is truncated"))
        handle.seek(size - _FOOTER_TRAILER.size)
        footer_length, _magic = _FOOTER_TRAILER.unpack(handle.read(_FOOTER_TRAILER.size))
        if footer_length > size - _FOOTER_TRAILER.size - 4:
            raise WorkbenchError(about(path, "table is truncated or its footer damaged"))
        handle.seek(size - _FOOTER_TRAILER.size - footer_length)
        head = handle.read(min(footer_length, _FOOTER_HEAD_BYTES))
    raw = _key_material_bytes(head, footer_length)
    if raw is None or not _key_material_is_as_sealed(raw):
        raise WorkbenchError(about(path, "table is damaged or was tampered with (key metadata)"))
    return raw


def read_sealed_table(
    path: str | Path, keys: KeySource, columns: Sequence[str] | None = None
) -> pa.Table:
    path = Path(path)
    _check_sealed(path)
    with opening_errors(path):
        return pq.read_table(
            path,
            columns=list(columns) if columns is not None else None,
            decryption_properties=kms.decryption_properties(keys),
        )


def open_table(
    path: str | Path, keys: KeySource, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Decrypt a sealed table in memory into a DataFrame (no plaintext on disk)."""
    table = read_sealed_table(path, keys, columns)
    with opening_errors(Path(path)):
        return table.to_pandas()


def open_parquet(path: str | Path, keys: KeySource) -> pq.ParquetFile:
    """A sealed table as a ``ParquetFile`` that reads one row group at a time.

    pyarrow's default ``pre_buffer`` would read every row group before the first batch,
    so memory would follow the file's size instead of the batch size.
    """
    path = Path(path)
    _check_sealed(path)
    with opening_errors(path):
        return pq.ParquetFile(
            path, pre_buffer=False, decryption_properties=kms.decryption_properties(keys)
        )


def scan_table(
    path: str | Path,
    keys: KeySource,
    *,
    batch_rows: int = 65_536,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of a sealed table, so memory stays bounded by ``batch_rows``."""
    parquet = open_parquet(path, keys)
    with opening_errors(Path(path)):
        yield from parquet.iter_batches(
            batch_size=batch_rows, columns=list(columns) if columns is not None else None
        )


def sealed_columns(path: str | Path, keys: KeySource) -> list[str]:
    """Column names of a sealed table (needs the footer key, i.e. the clinical key)."""
    return list(open_parquet(path, keys).schema_arrow.names)
