"""Client side of the key broker: attest, receive resources as JWE, act as a KeySource."""

from workbench.brokerclient.exchange import (
    AnalystApproval,
    BrokerError,
    BrokerSession,
    PendingRelease,
)
from workbench.brokerclient.keysource import BrokerKeySource

__all__ = ["AnalystApproval", "BrokerError", "BrokerKeySource", "BrokerSession", "PendingRelease"]
