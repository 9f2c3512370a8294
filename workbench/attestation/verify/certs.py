"""X.509 helpers shared by the vendor verifiers: load, check validity, check issuance.

Chains here are short and fixed by the vendor (PCK -> Platform/Processor CA -> Intel root;
VCEK/VLEK -> ASK -> ARK), so we verify each link directly against its expected issuer
instead of building paths: there is exactly one path that may be accepted.
"""

from __future__ import annotations

import hashlib
import itertools
import warnings
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from workbench.attestation.verify.result import CertSummary, EvidenceRejected

# AMD issues VCEKs with serial number 0, which RFC 5280 forbids and `cryptography` warns
# about (and plans to refuse). That is the vendor's format, so the warning is expected for
# exactly this message and silenced only while loading; any other warning still surfaces.
_SERIAL_WARNING = r"Parsed a serial number which wasn't positive"
_DER = Encoding.DER


def load_certificate(data: bytes) -> x509.Certificate:
    """Load one certificate, DER or PEM. Raises ValueError if it is neither."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning
        )
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle, in order."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning
        )
        return x509.load_pem_x509_certificates(data)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(_DER)).hexdigest()


def summarise(cert: x509.Certificate) -> CertSummary:
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=fingerprint(cert),
    )


# A certificate's name is a pure function of it (equal certificates have equal DER), and
# reading it through cryptography's Name objects costs tens of microseconds; the SEV-SNP
# verifier asks for the VCEK's, ASK's and ARK's several times per report. Bounded, so
# certificates seen once (other chips' VCEKs) age out.
@lru_cache(maxsize=256)
def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def check_validity(cert: x509.Certificate, now: datetime, check: str) -> None:
    """Refuse a certificate outside its validity period at ``now``."""
    if now < cert.not_valid_before_utc:
        raise EvidenceRejected(
            check,
            f"certificate '{common_name(cert)}' is not valid before "
            f"{cert.not_valid_before_utc.isoformat()} (evaluated at {now.isoformat()})",
        )
    if now > cert.not_valid_after_utc:
        raise EvidenceRejected(
            check,
            f"certificate '{common_name(cert)}' expired on "
            f"{cert.not_valid_after_utc.isoformat()} (evaluated at {now.isoformat()})",
        )


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, check: str) -> None:
    """Refuse unless ``issuer`` signed ``cert`` (ECDSA, RSA PKCS#1 v1.5 or RSASSA-PSS)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as err:
        raise EvidenceRejected(
            check,
            f"certificate '{common_name(cert)}' is not signed by '{common_name(issuer)}'"
            f" ({str(err) or type(err).__name__})",
        ) from err


def check_chain(
    chain: Sequence[x509.Certificate], root: x509.Certificate, now: datetime, check: str
) -> tuple[CertSummary, ...]:
    """Verify ``chain`` (leaf first, root excluded) links up to the pinned ``root``.

    Every certificate, the root included, must be valid at ``now``. Returns summaries leaf
    first, root last, for display.
    """
    links = [*chain, root]
    for cert, issuer in itertools.pairwise(links):
        check_validity(cert, now, check)
        check_issued_by(cert, issuer, check)
    check_validity(root, now, check)
    check_issued_by(root, root, check)
    return tuple(summarise(c) for c in links)


def pinned_root_matches(candidate: x509.Certificate, pinned: x509.Certificate) -> bool:
    """Compare by the whole DER encoding: a same-named test root must not pass."""
    return candidate.public_bytes(_DER) == pinned.public_bytes(_DER)
