"""Where sealing gets its keys from: one method, so a keyring and a key broker are alike."""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

FINGERPRINT_HEX = 16


def fingerprint(material: bytes) -> str:
    """Short SHA-256 of key material: lets people (and the broker's admin API) compare keys
    without seeing them. ``keyring list`` and ``kbs resource show`` print the same value."""
    return hashlib.sha256(material).hexdigest()[:FINGERPRINT_HEX]


class KeyUnavailable(LookupError):
    """The source cannot provide this key (absent, refused, or not released)."""

    def __init__(self, resource: str, reason: str) -> None:
        super().__init__(f"key '{resource}' is not available: {reason}")
        self.resource = resource
        self.reason = reason


@runtime_checkable
class KeySource(Protocol):
    def get_key(self, resource: str) -> bytes:
        """Return the key material of ``resource`` or raise :class:`KeyUnavailable`."""
        ...


class MemoryKeySource:
    """A fixed set of keys, e.g. the subset released to one holder."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = dict(keys)

    def get_key(self, resource: str) -> bytes:
        try:
            return self._keys[resource]
        except KeyError:
            raise KeyUnavailable(resource, "not held by this key source") from None
