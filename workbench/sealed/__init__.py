"""Sealed sessions: messages only the analyst's frontend and the attested kernel can read.

The cryptographic channel (``channel``) is the first piece of the sealed session of
docs/sealed-sessions.md; the kernel's lock and the frontends build on it.
"""

from workbench.sealed.channel import (
    Direction,
    Lane,
    SealedChannel,
    SealedEnvelope,
    SealRefused,
    session_fingerprint,
)

__all__ = ["Direction", "Lane", "SealRefused", "SealedChannel", "SealedEnvelope",
           "session_fingerprint"]
