"""Keys released by the data owner's key broker, as a sealing ``KeySource``.

``BrokerKeySource(url).get_key("cohort/table-key/phi")`` attests (once per session) and
returns the key the broker released as JWE to this process's ephemeral key; pyarrow's KMS
client and sealed-file readers take it like any other key source. Refusals become
``KeyUnavailable`` carrying the broker's reason (and the failed policy rules).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from workbench.attestation.tee import EvidenceProvider
from workbench.brokerclient.exchange import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_S,
    BrokerError,
    BrokerSession,
    PendingRelease,
)
from workbench.sealing.keys import KeyUnavailable

# Refusals after which a fresh session (new nonce, new evidence) may succeed.
RETRY_WITH_NEW_SESSION = frozenset({"SessionExpired", "UnknownSession", "NotAttested"})


class BrokerKeySource:
    def __init__(self, url: str, tee: str = "simulated", *,
                 provider: EvidenceProvider | None = None, resources: Sequence[str] = (),
                 wait_s: float = DEFAULT_WAIT_S, timeout_s: float = DEFAULT_TIMEOUT_S,
                 on_pending: Callable[[PendingRelease], None] | None = None) -> None:
        self.url = url
        self.tee = tee
        self._provider = provider
        self._named = tuple(resources)
        self._wait_s = wait_s
        self._timeout_s = timeout_s
        self._on_pending = on_pending
        self._session: BrokerSession | None = None
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> BrokerSession | None:
        return self._session

    def _new_session(self, resource: str) -> BrokerSession:
        if self._session is not None:
            self._session.close()
        self._session = None
        session = BrokerSession(self.url, tee=self.tee, provider=self._provider,
                                timeout_s=self._timeout_s)
        named = self._named if resource in self._named else (*self._named, resource)
        try:
            session.attest(named)
        except BaseException:
            session.close()
            raise
        self._session = session
        return session

    def _fetch(self, resource: str) -> bytes:
        session = self._session or self._new_session(resource)
        try:
            return session.get_resource(resource, wait_s=self._wait_s,
                                        on_pending=self._on_pending)
        except BrokerError as err:
            if err.kind not in RETRY_WITH_NEW_SESSION:
                raise
        return self._new_session(resource).get_resource(resource, wait_s=self._wait_s,
                                                        on_pending=self._on_pending)

    def get_key(self, resource: str) -> bytes:
        with self._lock:
            if resource not in self._keys:
                try:
                    self._keys[resource] = self._fetch(resource)
                except BrokerError as err:
                    raise KeyUnavailable(resource, str(err)) from err
            return self._keys[resource]

    def forget(self) -> None:
        """Drop released keys and the session (the ephemeral private key goes with it)."""
        with self._lock:
            self._keys.clear()
            if self._session is not None:
                self._session.close()
            self._session = None
