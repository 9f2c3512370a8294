"""Who the analyst is, as the key broker can check it: a JupyterHub token, not a name.

A kernel started by a JupyterHub single-user server finds ``WORKBENCH_IDENTITY_TOKEN`` in
its environment (the server passes its environment to its kernels) and sends it with every
broker request in the ``X-Workbench-Identity`` header. The broker resolves it with
``GET {hub_api_url}/user`` (``Authorization: token ...``), which JupyterHub answers for any
valid token with the owner's name and groups, and applies the resource's user and group
rules to that answer. A name the client merely states is never used.

The token is minted for this purpose by the hub when it starts the server
(:func:`hub_identity_token`, a ``Spawner.environment`` callable) with *no* scopes: it can
identify its owner and do nothing else. The server's own ``JUPYTERHUB_API_TOKEN`` is
deliberately not used: it can reach the user's server, which the broker must not be able to.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench.protocol.rcar import IDENTITY_HEADER

IDENTITY_ENV = "WORKBENCH_IDENTITY_TOKEN"
# Long enough for a working day's server; a server running longer gets a clear refusal
# ("not accepted by the hub") and a restart mints a new token.
DEFAULT_LIFETIME_S = 24 * 3600
TOKEN_NOTE = "workbench identity (for the data owner's key broker; identifies only)"  # noqa: S105


@dataclass(frozen=True)
class IdentityToken:
    """A bearer token naming its owner to the broker, and where it came from."""

    token: str
    source: str = IDENTITY_ENV

    def __repr__(self) -> str:  # never print the token
        return f"IdentityToken(source={self.source!r})"

    def headers(self) -> dict[str, str]:
        return {IDENTITY_HEADER: self.token}


def identity_from_env(environ: Mapping[str, str] | None = None) -> IdentityToken | None:
    token = (os.environ if environ is None else environ).get(IDENTITY_ENV, "").strip()
    return IdentityToken(token) if token else None


def hub_identity_token_factory(lifetime_s: int = DEFAULT_LIFETIME_S
                               ) -> Callable[[Any], str]:
    """A ``Spawner.environment`` value minting an identify-only token for the server's user::

        c.Spawner.environment = {"WORKBENCH_IDENTITY_TOKEN": hub_identity_token}
    """
    def mint(spawner: Any) -> str:
        return spawner.user.new_api_token(note=TOKEN_NOTE, expires_in=lifetime_s, scopes=[])

    return mint


hub_identity_token = hub_identity_token_factory()
