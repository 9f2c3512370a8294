"""Client side of the key broker: attest, receive resources as JWE, act as a KeySource."""

from workbench.brokerclient.client import AttestationFailed, BrokerClient
from workbench.brokerclient.exchange import (
    AnalystApproval,
    BrokerError,
    BrokerSession,
    ClientProblem,
    PendingRelease,
)
from workbench.brokerclient.keysource import BrokerKeySource

__all__ = ["AnalystApproval", "AttestationFailed", "BrokerClient", "BrokerError",
           "BrokerKeySource", "BrokerSession", "ClientProblem", "PendingRelease"]
