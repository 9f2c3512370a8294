"""The broker's token-signing keys, as this server trusts them.

Pinned keys (files: a JWK, a JWK set, or a PEM public key) are used as given and nothing is
fetched. Without pinned keys the server fetches the JWK set the broker publishes at
``/.well-known/jwks.json`` (trust on first use, like ``workbench kbs get-resource``), reads
it as every other client does (``workbench.protocol.jwks``), keeps it for a while, and says
where the keys came from so the panel can show it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

from workbench.protocol.jwks import JwksProblem, fetch_jwks_async, keys_from_document


def load_key_file(path: str | Path) -> list[JWK]:
    """Public keys from a JWK, JWK set or PEM file."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise JwksProblem(f"{source}: cannot read broker key ({err.strerror or err})") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return [JWK.from_pem(data)]
        except (JWException, ValueError, TypeError) as err:
            raise JwksProblem(f"{source}: not a PEM public key ({err})") from None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise JwksProblem(f"{source}: neither PEM nor JSON ({err})") from None
    return keys_from_document(document, source)


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
            raise JwksProblem("no broker key: set WorkbenchLab.broker_url or "
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
        return await fetch_jwks_async(self.jwks_url, timeout_s=self.timeout_s)
