"""One client's life with the broker: a current session, a new one when it lapses, the keys.

:class:`BrokerClient` keeps one attested :class:`BrokerSession` at a time. A resource is
fetched in the current session when that session named it and its token is still current;
otherwise, and after a refusal that only a new session can cure (``RETRY_WITH_NEW_SESSION``),
it attests again naming everything it has asked for so far. Released keys stay in memory,
once per resource. The kernel (``workbench.kernel.state``) and the sealing key source
(``BrokerKeySource``) both build on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from jwcrypto.jwk import JWK

from workbench.attestation.appraise.ear import EarClaims
from workbench.attestation.tee import EvidenceProvider
from workbench.brokerclient.exchange import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_S,
    AnalystApproval,
    BrokerError,
    BrokerSession,
    PendingRelease,
)
from workbench.brokerclient.identity import IdentityToken
from workbench.protocol.errors import RETRY_WITH_NEW_SESSION

# A token this close to its expiry is not worth starting a release with.
EXPIRY_MARGIN_S = 5


class AttestationFailed(BrokerError):
    """Attesting (a new session) failed; ``cause`` is the broker's or the network's error."""

    def __init__(self, cause: BrokerError) -> None:
        super().__init__(str(cause), kind=cause.kind, status=cause.status,
                         failed_rules=cause.failed_rules, request_id=cause.request_id)
        self.cause = cause


class BrokerClient:
    """Sessions, retries and released keys for one client of one broker.

    ``key``: the ephemeral key every session attests with (a fresh one per session when
    None). ``verify``: check each token's signature against the broker's published keys
    and keep its claims (the kernel does; a plain key source need not). ``name_each``:
    attest again for a resource the current session did not name, so that the token
    carries the broker's verdict on it (the kernel shows it before asking the analyst).
    ``also_name``: resources every new session names besides those asked for (the
    kernel's catalog).
    ``on_attested`` is told of each new session and its claims.
    """

    def __init__(self, url: str, *, tee: str = "simulated",
                 provider: EvidenceProvider | None = None, key: JWK | None = None,
                 transport_key: bytes = b"", identity: IdentityToken | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = DEFAULT_WAIT_S,
                 verify: bool = False, name_each: bool = False,
                 resources: Sequence[str] = (),
                 also_name: Callable[[], Sequence[str]] = tuple,
                 on_pending: Callable[[PendingRelease], None] | None = None,
                 on_attested: Callable[[BrokerSession, EarClaims | None], None] | None = None
                 ) -> None:
        self.url = url
        self.tee = tee
        self._provider = provider
        self._key = key
        self.transport_key = bytes(transport_key)
        # The sealed-session key the kernel is locked to (empty until a frontend locks it);
        # every session after the lock binds it.
        self.session_key = b""
        self.session_certificate: dict[str, Any] | None = None
        self._identity = identity
        self._timeout_s = timeout_s
        self.wait_s = wait_s
        self._verify = verify
        self._name_each = name_each
        self._named_first = tuple(resources)
        self._also_name = also_name
        self._on_pending = on_pending
        self._on_attested = on_attested
        self._lock = threading.RLock()
        self.session: BrokerSession | None = None
        self.claims: EarClaims | None = None
        self.named: tuple[str, ...] = ()
        self._keys: dict[str, bytes] = {}

    # -- sessions ---------------------------------------------------------------------------

    def attest(self, resources: Sequence[str]) -> BrokerSession:
        """A new session naming ``resources``; it replaces the current one when it succeeds."""
        named = tuple(dict.fromkeys(resources))
        session = BrokerSession(self.url, tee=self.tee, provider=self._provider,
                                timeout_s=self._timeout_s, key=self._key,
                                transport_key=self.transport_key, identity=self._identity,
                                session_key=self.session_key,
                                session_certificate=self.session_certificate)
        try:
            session.attest(named)
            claims = session.verified_claims() if self._verify else None
        except BrokerError as err:
            session.close()
            raise AttestationFailed(err) from None
        except BaseException:
            session.close()
            raise
        with self._lock:
            previous, self.session, self.claims, self.named = self.session, session, claims, named
        if previous is not None and previous is not session:
            previous.close()
        if self._on_attested is not None:
            self._on_attested(session, claims)
        return session

    def verifying_jwk(self) -> dict[str, Any] | None:
        """The public JWK the current session's token verified under, if any."""
        with self._lock:
            key = self.session.verified_by if self.session is not None else None
        return key.export_public(as_dict=True) if key is not None else None

    def _current(self, resource: str) -> BrokerSession | None:
        with self._lock:
            session, claims = self.session, self.claims
            if session is None or (self._name_each and resource not in self.named):
                return None
            if claims is not None and (claims.exp or 0) <= \
                    datetime.now(UTC).timestamp() + EXPIRY_MARGIN_S:
                return None
            return session

    def session_for(self, resource: str) -> BrokerSession:
        """The current session if it may ask for ``resource``, else a new one naming it."""
        session = self._current(resource)
        if session is not None:
            return session
        with self._lock:
            wanted = (*self._also_name(), *self.named, *self._named_first, resource)
        return self.attest(wanted)

    def new_session_for(self, resource: str) -> BrokerSession:
        """A new session for ``resource`` even if the current one looks usable."""
        with self._lock:
            self.session = None
        return self.session_for(resource)

    # -- releases ---------------------------------------------------------------------------

    def fetch(self, resource: str, *, analyst: AnalystApproval | None = None,
              session: BrokerSession | None = None) -> bytes:
        """Ask for ``resource`` once more, in ``session`` (default: the one for it), and
        again in a new session if the broker says only a new one can succeed."""
        session = session or self.session_for(resource)
        try:
            return session.get_resource(resource, wait_s=self.wait_s,
                                        on_pending=self._on_pending, analyst=analyst)
        except BrokerError as err:
            if err.kind not in RETRY_WITH_NEW_SESSION:
                raise
        return self.new_session_for(resource).get_resource(
            resource, wait_s=self.wait_s, on_pending=self._on_pending, analyst=analyst)

    def cached(self, resource: str) -> bytes | None:
        with self._lock:
            return self._keys.get(resource)

    def keep(self, resource: str, key: bytes) -> None:
        with self._lock:
            self._keys[resource] = key

    def get_key(self, resource: str, *, analyst: AnalystApproval | None = None) -> bytes:
        """The released key of ``resource``, fetched once and then kept in memory."""
        with self._lock:
            found = self._keys.get(resource)
            if found is None:
                found = self._keys[resource] = self.fetch(resource, analyst=analyst)
            return found

    def forget(self) -> None:
        """Drop released keys and the session (a fresh key pair goes with it when the
        client makes one per session)."""
        with self._lock:
            self._keys.clear()
            if self.session is not None:
                self.session.close()
            self.session, self.claims, self.named = None, None, ()
