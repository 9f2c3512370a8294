"""pyarrow's KMS seam, backed by any :class:`KeySource`.

Parquet modular encryption encrypts each column with a data key; pyarrow wraps those data
keys (through key-encryption keys, "double wrapping") with *master keys* that a KMS holds.
Here the master keys are our named resources and wrapping is AES-256-GCM with the master
key's name as associated data, so a wrapped key cannot be replayed under another name. The
data owner's keyring and the attested broker client plug in as the same ``KeySource``.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import timedelta

import pyarrow.parquet.encryption as pqe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workbench.sealing.keys import KeySource

KMS_INSTANCE_ID = "workbench"
_NONCE_BYTES = 12
# How long pyarrow may reuse unwrapped key-encryption keys within one process.
CACHE_LIFETIME = timedelta(minutes=10)


class WrongKey(Exception):
    """A master key was available but does not unwrap the key stored in the file."""

    def __init__(self, resource: str, cause: str = "wrong key") -> None:
        super().__init__(f"key '{resource}' does not open this data ({cause})")
        self.resource = resource


class KeySourceKmsClient(pqe.KmsClient):
    def __init__(self, source: KeySource) -> None:
        super().__init__()
        self._source = source

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        master = self._source.get_key(master_key_identifier)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(master).encrypt(nonce, key_bytes, master_key_identifier.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        master = self._source.get_key(master_key_identifier)
        raw = _decode_wrapped(wrapped_key)
        if raw is None:
            cause = "its wrapped form in the file is damaged"
            raise WrongKey(master_key_identifier, cause)
        try:
            return AESGCM(master).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], master_key_identifier.encode()
            )
        except (InvalidTag, ValueError):
            raise WrongKey(master_key_identifier) from None


def _decode_wrapped(wrapped_key: str) -> bytes | None:
    """Decode a wrapped key, or None unless it is exactly the base64 that wrap_key wrote.

    Decoders ignore the unused low bits of the last character before padding; requiring
    the canonical form means no other spelling of the same key is accepted.
    """
    try:
        raw = base64.b64decode(wrapped_key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == wrapped_key else None


def crypto_factory(source: KeySource) -> pqe.CryptoFactory:
    return pqe.CryptoFactory(lambda _config: KeySourceKmsClient(source))


def connection_config() -> pqe.KmsConnectionConfig:
    return pqe.KmsConnectionConfig(kms_instance_id=KMS_INSTANCE_ID)


def decryption_properties(source: KeySource):  # -> pyarrow FileDecryptionProperties
    return crypto_factory(source).file_decryption_properties(
        connection_config(), pqe.DecryptionConfiguration(cache_lifetime=CACHE_LIFETIME)
    )
