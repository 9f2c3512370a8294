"""The broker's token-signing public keys: where it publishes them and how to read them.

One parser for every reader (the broker client in the kernel, the lab server, the
client-side connection check) so a JWK set is judged the same way everywhere: a bounded
size, at least one key, public keys only.
"""

from __future__ import annotations

from typing import Any

import httpx
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

JWKS_PATH = "/.well-known/jwks.json"
# A JWK set of a few keys is a few KiB; refuse to parse anything far larger.
MAX_JWKS_BYTES = 256 * 1024


class JwksProblem(Exception):
    """The broker's keys cannot be had; the message is one line naming where and why.

    ``unreachable``: nothing answered (as opposed to an answer that is not a key set)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def jwks_url(broker_url: str) -> str:
    return broker_url.rstrip("/") + JWKS_PATH


def keys_from_document(document: Any, source: str) -> list[JWK]:
    """Public keys from a decoded JWK set (or a single JWK)."""
    items = document.get("keys") if isinstance(document, dict) and "keys" in document \
        else [document]
    if not isinstance(items, list) or not items:
        raise JwksProblem(f"{source}: no keys in the JWK set")
    keys = []
    for item in items:
        try:
            key = JWK(**item)
        except (JWException, TypeError, ValueError) as err:
            raise JwksProblem(f"{source}: not a JWK ({err})") from None
        if key.has_private:
            raise JwksProblem(f"{source}: holds a private key; give the public key only")
        keys.append(key)
    return keys


def _keys_from_response(response: httpx.Response, url: str) -> list[JWK]:
    if response.status_code != 200:
        raise JwksProblem(f"the key broker answered {response.status_code} for {url}")
    if len(response.content) > MAX_JWKS_BYTES:
        raise JwksProblem(f"{url}: JWK set larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = response.json()
    except ValueError as err:
        raise JwksProblem(f"{url}: not JSON ({err})") from None
    return keys_from_document(document, url)


def _unreachable(url: str, err: httpx.HTTPError) -> JwksProblem:
    return JwksProblem(f"cannot reach the key broker at {url} ({type(err).__name__}: {err})",
                       unreachable=True)


def fetch_jwks(url: str, *, timeout_s: float = 5.0, client: httpx.Client | None = None,
               headers: dict[str, str] | None = None) -> list[JWK]:
    """The keys published at ``url`` (a JWKS URL), fetched now."""
    try:
        if client is not None:
            response = client.get(url, headers=headers)
        else:
            response = httpx.get(url, timeout=timeout_s, headers=headers)
    except httpx.HTTPError as err:
        raise _unreachable(url, err) from None
    return _keys_from_response(response, url)


async def fetch_jwks_async(url: str, *, timeout_s: float = 5.0) -> list[JWK]:
    """``fetch_jwks`` for code running on an event loop (the lab server)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url)
    except httpx.HTTPError as err:
        raise _unreachable(url, err) from None
    return _keys_from_response(response, url)
