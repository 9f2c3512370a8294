"""Whether the broker's token says this client's analyst certified the session.

The ``lock`` crosses the relay in the clear, certificate included, and the kernel accepts any
valid certificate for its key and the session key. So an operator colluding with another
registered analyst can swap in a certificate that analyst signed over this client's session
key: the broker then names that analyst, and releases what only that analyst may have, to
this session. The kernel cannot tell; the client can, from the token it verifies: the
analyst it names and the certificate digest its evidence binds must be the client's own.
"""

from __future__ import annotations

from typing import Any

from workbench.attestation.appraise.ear import EarClaims, TokenInvalid, submod
from workbench.attestation.tee.binding import BindingError, binding_matches, report_data_for
from workbench.protocol.claims import (
    ANALYST_CLAIM,
    SESSION_KEY_CLAIM,
    TEE_PUBKEY_CLAIM,
    TRANSPORT_KEY_CLAIM,
)
from workbench.sealed.certificate import SessionCertificate


def _named(claim: Any) -> str:
    if not isinstance(claim, dict):
        return repr(claim)
    return f"{claim.get('name') or 'an unregistered analyst'} (key {claim.get('fingerprint')})"


def certifier_problem(claims: EarClaims, certificate: SessionCertificate | None) -> str | None:
    """Why the token's certifier is not ``certificate`` (this client's; None: the client
    certified nothing), or None when it is. Read after the token's signature, session key,
    kernel key and transport key were checked: a mismatch here is the certificate's."""
    claim = claims.get(ANALYST_CLAIM)
    if certificate is None:
        if claim is not None:
            return (f"the token says the session was certified by analyst {_named(claim)}, but "
                    f"this client certified none ({ANALYST_CLAIM}): a certificate was added "
                    "to the lock on the way")
    elif claim is None:
        return (f"the token names no analyst ({ANALYST_CLAIM}), but this client certified the "
                f"session with analyst key {certificate.analyst_fingerprint}: the certificate "
                "was dropped from the lock on the way")
    elif not isinstance(claim, dict) or claim.get("fingerprint") != certificate.analyst_fingerprint:
        return (f"the token names analyst {_named(claim)} as the session's certifier, not this "
                f"client's analyst key {certificate.analyst_fingerprint} ({ANALYST_CLAIM}): "
                "the lock's certificate was swapped on the way")
    return _binding_problem(claims, certificate)


def _binding_problem(claims: EarClaims, certificate: SessionCertificate | None) -> str | None:
    """The evidence's report data must bind this client's certificate digest (or none)."""
    digest = certificate.digest() if certificate is not None else b""
    try:
        reported = (submod(claims).annotated_evidence or {}).get("report_data")
        expected = report_data_for(str(claims.nonce or ""), claims.get(TEE_PUBKEY_CLAIM) or {},
                                   bytes.fromhex(str(claims.get(TRANSPORT_KEY_CLAIM, ""))),
                                   bytes.fromhex(str(claims.get(SESSION_KEY_CLAIM, ""))),
                                   digest)
        bound = isinstance(reported, str) and binding_matches(bytes.fromhex(reported), expected)
    except (TokenInvalid, BindingError, ValueError) as err:
        return f"the token's evidence binding cannot be checked: {err}"
    if bound:
        return None
    mine = f"SHA-256 {digest.hex()[:16]}..." if digest else "no certificate"
    return (f"the token's evidence binds another session certificate than this client's "
            f"({mine}): the lock's certificate was replaced on the way")
