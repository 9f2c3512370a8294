"""The key-encryption key: every secret in the store is sealed under it.

Resource keys and the broker's signing key are stored as AES-256-GCM ciphertext with the
record's identity (the resource path, the key id) as associated data, so a ciphertext moved
to another row does not decrypt. The KEK itself never enters the database.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workbench.errors import InputError, WorkbenchError, about
from workbench.kbs.row_mac import RowKey

KEK_BYTES = 32
NONCE_BYTES = 12
ENV_KEK = "WORKBENCH_KBS_KEK"
ENV_KEK_FILE = "WORKBENCH_KBS_KEK_FILE"
DEV_KEK_NAME = "kek.key"

log = logging.getLogger("workbench.kbs")


class KekMismatch(WorkbenchError):
    """The store was sealed under a different key-encryption key."""


@dataclass(frozen=True)
class Sealed:
    nonce: bytes
    ciphertext: bytes


class Kek:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEK_BYTES:
            raise InputError(f"key-encryption key must be {KEK_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        # The MAC key of the rows a release acts on (workbench.kbs.row_mac).
        self.row_key = RowKey(key)

    def seal(self, plaintext: bytes, context: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(nonce, self._aead.encrypt(nonce, plaintext, context.encode()))

    def open(self, sealed: Sealed, context: str) -> bytes:
        try:
            return self._aead.decrypt(sealed.nonce, sealed.ciphertext, context.encode())
        except InvalidTag:
            raise KekMismatch(
                f"stored secret '{context}' does not decrypt: wrong key-encryption key "
                "or the row was altered"
            ) from None


def _decode(raw: bytes, source: str) -> bytes:
    text = raw.strip()
    if len(raw) == KEK_BYTES:
        return raw
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEK_BYTES:
        raise InputError(about(source, f"key-encryption key must be {KEK_BYTES} raw bytes "
                                       "or their base64"))
    return key


def _create_dev_kek(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = os.urandom(KEK_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
    return key


def load_kek(kek_file: str | None, dev_dir: Path | None) -> Kek:
    """From ``kek_file``, $WORKBENCH_KBS_KEK_FILE, $WORKBENCH_KBS_KEK, or a dev file.

    ``dev_dir`` (the SQLite store's directory) allows generating a development KEK next to
    the database when nothing was configured; a server store (PostgreSQL) passes None and
    must be given a key.
    """
    path = kek_file or os.environ.get(ENV_KEK_FILE)
    if path:
        try:
            return Kek(_decode(Path(path).read_bytes(), path))
        except OSError as err:
            raise InputError(about(path, f"cannot read key-encryption key ({err.strerror})")) \
                from err
    if os.environ.get(ENV_KEK):
        return Kek(_decode(os.environ[ENV_KEK].encode(), f"${ENV_KEK}"))
    if dev_dir is None:
        raise InputError(
            f"no key-encryption key: give --kek-file, ${ENV_KEK_FILE} or ${ENV_KEK} "
            "(a development key is generated only for a local SQLite store)"
        )
    dev = dev_dir / DEV_KEK_NAME
    if dev.exists():
        return Kek(_decode(dev.read_bytes(), str(dev)))
    try:
        key = _create_dev_kek(dev)
    except FileExistsError:  # another broker process made it first
        return Kek(_decode(dev.read_bytes(), str(dev)))
    log.warning("generated a development key-encryption key at %s (0600); for production "
                "keep the KEK outside the store's directory and pass --kek-file", dev)
    return Kek(key)
