"""Keys released by the data owner's key broker, as a sealing ``KeySource``.

``BrokerKeySource(url).get_key("cohort/table-key/phi")`` attests (once per session) and
returns the key the broker released as JWE to this process's ephemeral key; pyarrow's KMS
client and sealed-file readers take it like any other key source. Refusals become
``KeyUnavailable`` carrying the broker's reason (and the failed policy rules).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workbench.attestation.tee import EvidenceProvider
from workbench.brokerclient.client import BrokerClient
from workbench.brokerclient.exchange import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_S,
    BrokerError,
    BrokerSession,
    PendingRelease,
)
from workbench.sealing.keys import KeyUnavailable


class BrokerKeySource:
    def __init__(self, url: str, tee: str = "simulated", *,
                 provider: EvidenceProvider | None = None, resources: Sequence[str] = (),
                 wait_s: float = DEFAULT_WAIT_S, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_pending: Callable[[PendingRelease], None] | None = None) -> None:
        self.url = url
        self.tee = tee
        self._client = BrokerClient(url, tee=tee, provider=provider, resources=resources,
                                    wait_s=wait_s, timeout_s=timeout_s, on_pending=on_pending)

    @property
    def session(self) -> BrokerSession | None:
        return self._client.session

    def get_key(self, resource: str) -> bytes:
        try:
            return self._client.get_key(resource)
        except BrokerError as err:
            raise KeyUnavailable(resource, str(err)) from err

    def forget(self) -> None:
        """Drop released keys and the session (the ephemeral private key goes with it)."""
        self._client.forget()
