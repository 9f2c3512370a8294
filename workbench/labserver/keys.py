"""The broker's token-signing keys, as this server trusts them.

Pinned keys (files: a JWK, a JWK set, or a PEM public key) are used as given and nothing is
fetched. Without pinned keys the server fetches the JWK set the broker publishes at
``/.well-known/jwks.json`` (trust on first use, like ``workbench kbs get-resource``), keeps it
for a while, and says where the keys came from so the panel can show it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

JWKS_PATH = "/.well-known/jwks.json"
# A JWK set of a few keys is a few KiB; refuse to parse anything far larger.
MAX_JWKS_BYTES = 256 * 1024


class KeyProblem(Exception):
    """The broker's keys cannot be had; the message is the one line the panel shows."""


def _keys_from_document(document: Any, source: str) -> list[JWK]:
    items = document.get("keys") if isinstance(document, dict) and "keys" in document \
        else [document]
    if not isinstance(items, list) or not items:
        raise KeyProblem(f"{source}: no keys in the JWK set")
    keys = []
    for item in items:
        try:
            key = JWK(**item)
        except (JWException, TypeError, ValueError) as err:
            raise KeyProblem(f"{source}: not a JWK ({err})") from None
        if key.has_private:
            raise KeyProblem(f"{source}: holds a private key; give the public key only")
        keys.append(key)
    return keys


def load_key_file(path: str | Path) -> list[JWK]:
    """Public keys from a JWK, JWK set or PEM file."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise KeyProblem(f"{source}: cannot read broker key ({err.strerror or err})") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return [JWK.from_pem(data)]
        except (JWException, ValueError, TypeError) as err:
            raise KeyProblem(f"{source}: not a PEM public key ({err})") from None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise KeyProblem(f"{source}: neither PEM nor JSON ({err})") from None
    return _keys_from_document(document, source)


@dataclass
class BrokerKeys:
    """Where keys come from (pinned files, else the published set) and a short cache."""

    pinned_files: Sequence[str]
    jwks_url: str
    cache_s: float = 300.0
    timeout_s: float = 5.0
    _cached: list[JWK] | None = None
    _fetched_at: float = 0.0

    @property
    def source(self) -> str:
        if self.pinned_files:
            return "pinned " + ", ".join(self.pinned_files)
        return f"published {self.jwks_url}" if self.jwks_url else "nowhere"

    async def get(self) -> list[JWK]:
        if self.pinned_files:
            return [k for path in self.pinned_files for k in load_key_file(path)]
        if not self.jwks_url:
            raise KeyProblem("no broker key: set WorkbenchLab.broker_url or "
                             "WorkbenchLab.broker_public_keys")
        if self._cached is not None and time.monotonic() - self._fetched_at < self.cache_s:
            return self._cached
        self._cached = await self._fetch()
        self._fetched_at = time.monotonic()
        return self._cached

    def forget(self) -> None:
        """Drop the cached set (after a signature failure the broker may have a new key)."""
        self._cached = None

    async def _fetch(self) -> list[JWK]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(self.jwks_url)
        except httpx.HTTPError as err:
            raise KeyProblem(f"cannot reach the key broker at {self.jwks_url} "
                             f"({type(err).__name__}: {err})") from None
        if response.status_code != 200:
            raise KeyProblem(f"the key broker answered {response.status_code} for "
                             f"{self.jwks_url}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeyProblem(f"{self.jwks_url}: JWK set larger than {MAX_JWKS_BYTES} bytes")
        try:
            document = response.json()
        except ValueError as err:
            raise KeyProblem(f"{self.jwks_url}: not JSON ({err})") from None
        return _keys_from_document(document, self.jwks_url)
