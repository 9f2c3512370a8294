"""What the broker remembers of a session, between requests and in its caches, and how
the store writes a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jwcrypto.jwk import JWK

from workbench.attestation.verify.result import VerifiedEvidence
from workbench.sealed.certificate import SessionCertificate


def stamp(moment: datetime) -> str:
    """How the store writes a moment (sortable text, so expiry compares as strings)."""
    return moment.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Challenged:
    """A session between auth and attest (as the row says, or as auth just wrote it)."""

    id: str
    tee: str
    nonce: str
    state: str
    resources: tuple[str, ...]
    expires_at: str


@dataclass
class Session:
    id: str
    tee: str
    resources: tuple[str, ...]
    expires_at: datetime
    tee_pubkey: dict[str, Any]
    tee_key: JWK
    attested_at: datetime
    evidence: VerifiedEvidence
    report_data: bytes
    # The sealed-session key the evidence binds (b"": not locked to a frontend).
    session_key: bytes = b""
    # The analyst's certificate of that session, as presented (None: not certified), and
    # the hash of the token issued to the session (what a signed approval names).
    certificate: SessionCertificate | None = None
    token_sha256: str = ""
