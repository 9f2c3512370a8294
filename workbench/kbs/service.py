"""The broker's protocol logic, free of HTTP: auth, attest, resource release.

``Broker`` composes the parts, each with one job: ``sessions`` (auth, attest, loading an
attested session), ``appraisal`` (evidence against each resource's policy), ``release``
(release rules, approvals, the release itself) and ``caches`` (what a process remembers).
State lives in the store (so replicas behind a load balancer share it); every outcome,
success or refusal, is written to the audit log before the answer leaves the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from workbench.kbs import audit
from workbench.kbs.analysts import Analysts
from workbench.kbs.appraisal import Appraiser, token_policy
from workbench.kbs.approvals import Approvals
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.caches import BrokerCaches
from workbench.kbs.config import BrokerConfig
from workbench.kbs.evidence import EvidenceVerifier
from workbench.kbs.identity import NOBODY, Presented, identity_provider
from workbench.kbs.kek import Kek
from workbench.kbs.registry import Registry
from workbench.kbs.release import (
    ANALYST_APPROVAL_MODES,
    APPROVAL_SOURCES,
    Pending,
    Released,
    Releases,
)
from workbench.kbs.sessions import Sessions, session_ref, stamp
from workbench.kbs.store import Store
from workbench.kbs.witness import Witness
from workbench.protocol.rcar import PROTOCOL_VERSION, AttestRequest, AuthRequest, Challenge

# Where these lived before the broker was split; importers may keep using this module.
__all__ = ["ANALYST_APPROVAL_MODES", "APPROVAL_SOURCES", "Broker", "Pending", "Released",
           "session_ref", "stamp"]


class Broker:
    def __init__(self, config: BrokerConfig, store: Store, kek: Kek, key: BrokerKey,
                 verifier: EvidenceVerifier, *, clock: Callable[[], datetime] | None = None,
                 audit_keys: dict[str, ec.EllipticCurvePublicKey] | None = None) -> None:
        self.config = config
        self.store = store
        self.key = key
        # The keys the admin route verifies the log with: the broker's own, whose private
        # halves opened under the KEK at start (never the table's public column).
        self.audit_keys = audit_keys or {key.kid: key.private_key.public_key()}
        # Pushes checkpoints out as the log grows (set by the server when configured).
        self.witness: Witness | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self.registry = Registry(store, kek, key, clock=self._clock,
                                 default_timeout_s=config.approval_timeout_s)
        self.approvals = Approvals(store, key, clock=self._clock, row_key=kek.row_key)
        # Who asks (a hub token, checked at the hub): for the resources' user/group rules.
        self.identities = identity_provider(config.hub_api_url,
                                            cache_s=config.identity_cache_s,
                                            timeout_s=config.identity_timeout_s)
        caches = BrokerCaches()
        appraiser = Appraiser(self.registry, caches, token_policy(config))
        self.analysts = Analysts(store, key, clock=self._clock, row_key=kek.row_key)
        self._sessions = Sessions(config, store, key, verifier, caches, appraiser,
                                  self.analysts)
        self._releases = Releases(store, key, self.registry, self.approvals, self._sessions,
                                  appraiser, self.analysts)

    def now(self) -> datetime:
        return self._clock()

    def startup_record(self, version: str) -> None:
        audit.record(self.store, self.key, "startup",
                     {"kid": self.key.kid, "version": version, "protocol": PROTOCOL_VERSION},
                     self.now())

    def purge_expired(self) -> int:
        """Drop sessions that expired longer ago than they are kept for investigation."""
        return self._sessions.purge_expired(self.now())

    # POST /kbs/v0/auth
    def auth(self, request: AuthRequest) -> tuple[str, Challenge, int]:
        return self._sessions.auth(request, self.now())

    # POST /kbs/v0/attest
    def attest(self, session_id: str | None, request: AttestRequest,
               presented: Presented = NOBODY) -> tuple[str, int]:
        return self._sessions.attest(session_id, request, self.now(), presented)

    # GET /kbs/v0/resource/<repo>/<type>/<tag>
    def resource(self, session_id: str | None, path: str,
                 analyst: dict[str, str] | None = None,
                 presented: Presented = NOBODY) -> Released | Pending:
        return self._releases.resource(session_id, path, self.now(), analyst, presented)
