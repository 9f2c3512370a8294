"""Sealed files (models): Tink streaming AEAD, AES256_GCM_HKDF_1MB.

Layout: ``WBSEALF1`` | header length (u32, big-endian) | header (JSON) | Tink ciphertext.
The associated data is everything before the ciphertext, so the header (which names the
resource) cannot be edited, and a file sealed as one resource fails to open as another.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import tink
from tink import cleartext_keyset_handle, streaming_aead

from workbench.errors import InputError, WorkbenchError, about
from workbench.sealing.atomic import atomic_output
from workbench.sealing.formats import SEALED_FILE_MAGIC, Kind, detect
from workbench.sealing.keyring import KIND_TINK_KEYSET, Keyring
from workbench.sealing.keys import KeySource, KeyUnavailable
from workbench.sealing.resources import check_name, file_keyset

FORMAT = "workbench-sealed-file/1"
_LENGTH = struct.Struct(">I")
_MAX_HEADER = 64 * 1024
# Tink's Python streams are fastest when fed and drained in large pieces.
_CHUNK = 1 << 20
_READ_CHUNK = 1 << 24

streaming_aead.register()


# What each header field must be before anything trusts it.
HEADER_TYPES: dict[str, type] = {"name": str, "resource": str, "content": str, "size": int,
                                 "original": str}


@dataclass(frozen=True)
class SealedHeader:
    name: str
    resource: str
    content: str
    size: int
    original: str

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "name": self.name,
                "resource": self.resource,
                "content": self.content,
                "size": self.size,
                "original": self.original,
            },
            sort_keys=True,
        ).encode()


def new_keyset() -> bytes:
    handle = tink.new_keyset_handle(
        streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    )
    out = io.StringIO()
    cleartext_keyset_handle.write(tink.JsonKeysetWriter(out), handle)
    return out.getvalue().encode()


def _primitive(keyset: bytes) -> streaming_aead.StreamingAead:
    handle = cleartext_keyset_handle.read(tink.JsonKeysetReader(keyset.decode()))
    return handle.primitive(streaming_aead.StreamingAead)


def _prefix(header: bytes) -> bytes:
    return SEALED_FILE_MAGIC + _LENGTH.pack(len(header)) + header


def seal_file(source: str | Path, out: str | Path, *, name: str, keyring: Keyring) -> Path:
    """Encrypt an ONNX model into ``out`` under ``name``'s keyset (created if new)."""
    source, out = Path(source), Path(out)
    try:
        check_name(name)
        kind = detect(source)
    except ValueError as err:
        raise InputError(str(err)) from None
    except OSError as err:
        raise InputError(about(source, f"cannot read ({err.strerror or err})")) from None
    if kind is not Kind.ONNX:
        raise InputError(about(source, f"is {kind.value}, not an ONNX model"))
    resource = file_keyset(name)
    if resource not in keyring:
        keyring.add(resource, KIND_TINK_KEYSET, new_keyset())
    header = SealedHeader(name, resource, "onnx", source.stat().st_size, source.name).encode()
    prefix = _prefix(header)
    primitive = _primitive(keyring.get_key(resource))
    with atomic_output(out) as handle, source.open("rb", buffering=0) as plain:
        handle.write(prefix)
        with primitive.new_encrypting_stream(_NonClosing(handle), prefix) as stream:
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            while count := plain.readinto(buffer):
                stream.write(view[:count])
        keyring.save()
    return out


def seal_bytes(data: bytes, out: str | Path, *, name: str, original: str,
               keyring: Keyring) -> Path:
    """Encrypt an ONNX model held in memory (e.g. with a card just embedded) into ``out``;
    ``original`` is the file name recorded in the header."""
    out = Path(out)
    try:
        check_name(name)
    except ValueError as err:
        raise InputError(str(err)) from None
    resource = file_keyset(name)
    if resource not in keyring:
        keyring.add(resource, KIND_TINK_KEYSET, new_keyset())
    prefix = _prefix(SealedHeader(name, resource, "onnx", len(data), original).encode())
    primitive = _primitive(keyring.get_key(resource))
    view = memoryview(data)
    with atomic_output(out) as handle:
        handle.write(prefix)
        with primitive.new_encrypting_stream(_NonClosing(handle), prefix) as stream:
            for start in range(0, len(data), _CHUNK):
                stream.write(view[start : start + _CHUNK])
        keyring.save()
    return out


class _NonClosing(io.RawIOBase):
    """Tink closes its destination; the atomic writer must stay open to fsync and rename."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        return self._target.write(data)


def read_header(handle: BinaryIO, path: Path) -> tuple[SealedHeader, bytes]:
    magic = handle.read(len(SEALED_FILE_MAGIC))
    if magic != SEALED_FILE_MAGIC:
        raise InputError(about(path, "is not a sealed file"))
    raw_length = handle.read(_LENGTH.size)
    if len(raw_length) != _LENGTH.size:
        raise WorkbenchError(about(path, "sealed file is truncated (header incomplete)"))
    (length,) = _LENGTH.unpack(raw_length)
    if length > _MAX_HEADER:
        raise WorkbenchError(about(path, "sealed file header is damaged (length out of range)"))
    header = handle.read(length)
    if len(header) != length:
        raise WorkbenchError(about(path, "sealed file is truncated (header incomplete)"))
    try:
        fields = json.loads(header)
        if fields.pop("format") != FORMAT:
            raise ValueError("unknown format")
        parsed = SealedHeader(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise WorkbenchError(about(path, "sealed file header is damaged")) from None
    wrong = [f for f, kind in HEADER_TYPES.items()
             if not isinstance(getattr(parsed, f), kind) or isinstance(getattr(parsed, f), bool)]
    if wrong:
        # The header is authenticated only once decryption starts: until then its fields
        # are whatever the file holds.
        raise WorkbenchError(about(path, f"sealed file header is damaged ({', '.join(wrong)} "
                                         "of the wrong type)"))
    return parsed, _prefix(header)


def open_file(path: str | Path, name: str, keys: KeySource) -> bytes:
    """Decrypt the sealed file ``path`` of resource ``name`` in memory."""
    path = Path(path)
    try:
        handle = path.open("rb", buffering=0)
    except FileNotFoundError:
        raise InputError(about(path, "file not found")) from None
    with handle:
        header, prefix = read_header(handle, path)
        if header.name != name:
            raise WorkbenchError(
                about(path, f"was sealed as resource '{header.name}', not '{name}'")
            )
        remaining = path.stat().st_size - len(prefix)
        if header.size < 0 or header.size > remaining:
            raise WorkbenchError(about(path, "sealed file is truncated or its header damaged"))
        try:
            primitive = _primitive(keys.get_key(file_keyset(name)))
        except KeyUnavailable as err:
            raise WorkbenchError(about(path, str(err))) from None
        except (tink.TinkError, ValueError, UnicodeDecodeError):
            raise WorkbenchError(
                about(path, f"key '{file_keyset(name)}' is not a valid Tink keyset")
            ) from None
        return _decrypt(primitive, handle, prefix, header.size, path)


def _decrypt(primitive, handle: BinaryIO, prefix: bytes, size: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    position = 0
    try:
        with primitive.new_decrypting_stream(handle, prefix) as stream:
            raw = getattr(stream, "raw", stream)
            while chunk := raw.read(_READ_CHUNK):
                position += len(chunk)
                if position > size:
                    raise WorkbenchError(about(path, "sealed file is longer than its header says"))
                chunks.append(chunk)
    except tink.TinkError:
        raise WorkbenchError(
            about(path, "sealed file is damaged, truncated, or not for this key "
                  "(authentication failed)")
        ) from None
    if position != size:
        raise WorkbenchError(about(path, "sealed file is truncated"))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
