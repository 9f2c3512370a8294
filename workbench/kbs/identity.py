"""Who asks for a release: a JupyterHub token in ``X-Workbench-Identity``, checked at the hub.

The broker never takes a user name from the client. A request may carry a token; the broker
asks the hub configured as ``hub_api_url`` whom it belongs to, with ``GET {hub_api_url}/user``
and ``Authorization: token <token>``. JupyterHub answers that for every valid token, whatever
its scopes (its "identify" endpoint: the owner's ``name``, ``kind`` and ``groups``), so the
token the kernel carries needs no permission at all. Answers are cached for
``identity_cache_s`` seconds under a hash of the token (revoking a token at the hub takes
effect within that time). Refusals:

* ``IdentityRejected`` (401): the hub does not know the token (unknown, expired, revoked,
  forged), or it names a service rather than a user;
* ``IdentityUnavailable`` (503): the hub cannot be reached or answers something else.

A request without a token has no identity; a broker without ``hub_api_url`` checks none and
says so in the audit log. Whether a release needs an identity is the resource's business
(``workbench.kbs.release_rules``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx

from workbench.kbs.errors import KbsError
from workbench.protocol.errors import ErrorKind
from workbench.protocol.rcar import IDENTITY_HEADER

MAX_TOKEN_CHARS = 512
CACHE_ENTRIES = 4096
MAX_GROUPS = 256


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "groups": list(self.groups)}


@dataclass(frozen=True)
class Presented:
    """What a request said about its user, after checking: a user, nobody, or a refusal."""

    user: User | None = None
    error: KbsError | None = None
    # False when a token came but the broker has no identity provider to check it with.
    checked: bool = True
    provider: str = ""

    def audit(self) -> dict[str, Any]:
        if self.user is not None:
            return {"user": self.user.to_json(), "identity_provider": self.provider}
        if not self.checked:
            return {"user": None, "identity": "presented, not checked: no hub_api_url"}
        return {"user": None}


NOBODY = Presented()


def _user_from(document: Any, url: str) -> User:
    if not isinstance(document, dict):
        raise KbsError(
            ErrorKind.IDENTITY_UNAVAILABLE,
            f"the hub at {url} answered something that is "
            "not a user model")
    kind = document.get("kind", "user")
    name = document.get("name")
    if kind != "user":
        raise KbsError(
            ErrorKind.IDENTITY_REJECTED,
            f"the identity token belongs to {kind} '{name}', "
            "not to a user")
    groups = document.get("groups") or []
    if not isinstance(name, str) or not name or not isinstance(groups, list) or \
            len(groups) > MAX_GROUPS or not all(isinstance(g, str) for g in groups):
        raise KbsError(ErrorKind.IDENTITY_UNAVAILABLE, f"the hub at {url} answered a user model "
                                              "without a usable name and groups")
    return User(name, tuple(groups))


class HubIdentity:
    """Resolves tokens at one JupyterHub's REST API, with a short cache."""

    def __init__(self, api_url: str, *, cache_s: float, timeout_s: float) -> None:
        self.api_url = api_url.rstrip("/")
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._cache: OrderedDict[str, tuple[float, User]] = OrderedDict()
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=self._timeout_s)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _cached(self, digest: str) -> User | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        expires, user = entry
        if expires < time.monotonic():
            self._cache.pop(digest, None)
            return None
        return user

    def _remember(self, digest: str, user: User) -> None:
        self._cache[digest] = (time.monotonic() + self._cache_s, user)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def lookup(self, token: str) -> User:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cached(digest)
        if cached is not None:
            return cached
        url = f"{self.api_url}/user"
        try:
            response = await self._http().get(url, headers={"Authorization": f"token {token}"})
        except httpx.HTTPError as err:
            raise KbsError(
                ErrorKind.IDENTITY_UNAVAILABLE,
                           f"cannot check the user's identity: the hub at {self.api_url} is "
                           f"unreachable ({type(err).__name__}: {err or 'no answer'})") from None
        if response.status_code in (401, 403):
            raise KbsError(
                ErrorKind.IDENTITY_REJECTED,
                           f"the identity token was not accepted by the hub at {self.api_url} "
                           f"(HTTP {response.status_code}): it is unknown, expired or revoked")
        if response.status_code != 200:
            raise KbsError(
                ErrorKind.IDENTITY_UNAVAILABLE,
                           f"cannot check the user's identity: the hub at {self.api_url} "
                           f"answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            document = None
        user = _user_from(document, self.api_url)
        self._remember(digest, user)
        return user

    async def resolve(self, token: str | None) -> Presented:
        if not token:
            return NOBODY
        if len(token) > MAX_TOKEN_CHARS or not token.isprintable():
            return Presented(error=KbsError(
                ErrorKind.IDENTITY_REJECTED,
                                            f"the {IDENTITY_HEADER} header is not a token"))
        try:
            return Presented(user=await self.lookup(token), provider=self.api_url)
        except KbsError as err:
            return Presented(error=err, provider=self.api_url)


class NoIdentityProvider:
    """A broker without ``hub_api_url``: tokens are noted, never trusted."""

    api_url = ""

    async def resolve(self, token: str | None) -> Presented:
        return Presented(checked=False) if token else NOBODY

    async def aclose(self) -> None:
        return None


def identity_provider(api_url: str, *, cache_s: float, timeout_s: float
                      ) -> HubIdentity | NoIdentityProvider:
    if not api_url:
        return NoIdentityProvider()
    return HubIdentity(api_url, cache_s=cache_s, timeout_s=timeout_s)
