"""Reading one fetched answer: the parsed value and the time it stops being usable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.intel_collateral import parse_enclave_identity, parse_tcb_info
from workbench.attestation.verify.certs import load_certificate, load_pem_bundle
from workbench.attestation.verify.collateral import load_crl
from workbench.attestation.verify.intel_chain import CERT_DECODE_ERRORS


class Unreadable(Exception):
    """The answer is not the collateral asked for."""


def _tcb_info(name: str, body: bytes) -> tuple[Any, datetime]:
    info = parse_tcb_info(body)
    return info, info.next_update


def _qe_identity(name: str, body: bytes) -> tuple[Any, datetime]:
    identity = parse_enclave_identity(body)
    return identity, identity.next_update


def _crl(name: str, body: bytes) -> tuple[Any, datetime]:
    crl = load_crl(name, body)
    if crl is None:
        raise Unreadable("not a CRL (DER, PEM or hex)")
    next_update = crl.crl.next_update_utc
    if next_update is None:
        raise Unreadable("CRL without nextUpdate")
    return crl, next_update


def _cert(name: str, body: bytes) -> tuple[Any, datetime]:
    cert = load_certificate(body)
    return cert, cert.not_valid_after_utc


def _chain(name: str, body: bytes) -> tuple[Any, datetime]:
    chain = tuple(load_pem_bundle(body))
    if not chain:
        raise Unreadable("no PEM certificate")
    return chain, min(c.not_valid_after_utc for c in chain)


READERS: dict[str, Callable[[str, bytes], tuple[Any, datetime]]] = {
    "tcb-info": _tcb_info,
    "qe-identity": _qe_identity,
    "crl": _crl,
    "cert": _cert,
    "chain": _chain,
}


def read_answer(kind: str, name: str, body: bytes) -> tuple[Any, datetime]:
    """(value, next update) of an answer of ``kind``; raises Unreadable saying why."""
    try:
        return READERS[kind](name, body)
    except (MalformedEvidence, *CERT_DECODE_ERRORS, UnicodeDecodeError) as err:
        raise Unreadable(str(err) or type(err).__name__) from None


def read_chain(data: bytes) -> tuple[x509.Certificate, ...]:
    """The signer's chain of a PCS header (URL-decoded PEM)."""
    try:
        chain = tuple(load_pem_bundle(data))
    except CERT_DECODE_ERRORS as err:
        raise Unreadable(f"issuer chain header is not PEM certificates ({err})") from None
    if not chain:
        raise Unreadable("issuer chain header holds no certificate")
    return chain
