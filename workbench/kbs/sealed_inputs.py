"""A sealed session's keys, checked whole when the session attests.

Every later use of these keys (the session fingerprint a sealed approval names, the analyst
key's fingerprint in the token, the signing key a signed approval is verified under) takes
them as P-256 keys. A key that is not one is refused here, with the field named, before the
evidence is verified and in the attest step that spends the nonce, instead of surfacing as
an unexpected error at the first release. Each check is one row of ``CHECKS``.
"""

from __future__ import annotations

from collections.abc import Callable

from workbench.kbs.errors import KbsError
from workbench.protocol.errors import ErrorKind
from workbench.protocol.rcar import RuntimeData
from workbench.sealed.certificate import CertificateInvalid, SessionCertificate
from workbench.sealed.keys import key_from_jwk, key_from_point

SESSION_KEY = "runtime-data.session-key"
TEE_PUBKEY = "runtime-data.tee-pubkey"
CERTIFICATE = "runtime-data.session-certificate"


def _point(hex_text: str) -> None:
    """ValueError unless ``hex_text`` is an uncompressed P-256 point on the curve."""
    key_from_point(bytes.fromhex(hex_text))


def _session_key(runtime: RuntimeData) -> KbsError | None:
    try:
        _point(runtime.session_key)
    except ValueError as err:
        return KbsError(ErrorKind.MALFORMED_REQUEST,
                        f"{SESSION_KEY}: not a P-256 public key ({err})")
    return None


def _kernel_key(runtime: RuntimeData) -> KbsError | None:
    jwk = runtime.tee_pubkey
    try:
        key_from_jwk(jwk)
    except ValueError as err:
        named = [str(jwk[k]) for k in ("kty", "crv") if k in jwk] \
            if isinstance(jwk, dict) else []
        which = f"unusable: {err}" if named == ["EC", "P-256"] else \
            " ".join(named) or "of no key type"
        return KbsError(ErrorKind.INVALID_TEE_PUBKEY,
                        f"{TEE_PUBKEY}: a sealed session's kernel key must be an EC P-256 "
                        f"JWK, since the session fingerprint and sealed approvals are "
                        f"computed over P-256; this one is {which}")
    return None


def _certificate_keys(certificate: SessionCertificate) -> None:
    try:
        key_from_jwk(certificate.analyst_key)
    except ValueError as err:
        raise KbsError(ErrorKind.MALFORMED_REQUEST,
                       f"{CERTIFICATE}.analyst_key: not an EC P-256 JWK ({err})") from None
    try:
        _point(certificate.signing_key)
    except ValueError as err:
        raise KbsError(ErrorKind.MALFORMED_REQUEST,
                       f"{CERTIFICATE}.signing_key: not a P-256 public key in hex "
                       f"({err})") from None


# Applied to a sealed session (one with a session-key) in this order, before its
# certificate; the first refusal wins.
CHECKS: tuple[Callable[[RuntimeData], KbsError | None], ...] = (_session_key, _kernel_key)


def check_sealed_inputs(runtime: RuntimeData) -> SessionCertificate | None:
    """Raise the first refusal of ``CHECKS``, then of the certificate's keys; return the
    parsed certificate (None: the session has none). A session without a session key is
    not sealed: its certificate, if any, is refused as such by ``session_certificate``."""
    if not runtime.session_key:
        return session_certificate(runtime)
    for check in CHECKS:
        error = check(runtime)
        if error is not None:
            raise error
    certificate = session_certificate(runtime)
    if certificate is not None:
        _certificate_keys(certificate)
    return certificate


def session_certificate(runtime: RuntimeData) -> SessionCertificate | None:
    """The session certificate a kernel presents, parsed; its signature is judged later."""
    value = runtime.session_certificate
    if value is None:
        return None
    if not runtime.session_key:
        raise KbsError(ErrorKind.MALFORMED_REQUEST, "a session-certificate comes only with "
                                                    "the session-key it certifies")
    try:
        return SessionCertificate.from_json(value)
    except CertificateInvalid as err:
        raise KbsError(ErrorKind.MALFORMED_REQUEST, f"{CERTIFICATE}: {err}") from None
