"""AMD's CRL for a product line: signed by the pinned ARK, current, and not listing the
ASK/ASVK or the VCEK/VLEK that endorse a report.

AMD KDS publishes one CRL per product line and key kind (``/vcek/v1/{product}/crl``,
``/vlek/v1/{product}/crl``), issued by the ARK with RSASSA-PSS SHA-384.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from cryptography import x509

from workbench.attestation.verify.certs import common_name
from workbench.attestation.verify.intel_chain import CERT_DECODE_ERRORS
from workbench.attestation.verify.result import EvidenceRejected

CHECK_CRL = "crl"


def load_amd_crl(data: bytes, source: str) -> x509.CertificateRevocationList:
    try:
        if data.lstrip().startswith(b"-----BEGIN X509 CRL-----"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except CERT_DECODE_ERRORS as err:
        raise EvidenceRejected(CHECK_CRL, f"{source}: not a CRL ({err})") from None


@lru_cache(maxsize=32)
def _signed(crl_der: bytes, ark_der: bytes) -> bool:
    # Cached by the CRL's and the ARK's bytes: the outcome depends on nothing else.
    crl = x509.load_der_x509_crl(crl_der)
    ark = x509.load_der_x509_certificate(ark_der)
    try:
        return crl.is_signature_valid(ark.public_key())  # type: ignore[arg-type]
    except (*CERT_DECODE_ERRORS, NotImplementedError):
        return False


def check_amd_crl(crl: x509.CertificateRevocationList, source: str, ark: x509.Certificate,
                  certs: tuple[x509.Certificate, ...], now: datetime) -> str:
    """Refuse a CRL not issued and signed by ``ark``, outside its window, or listing any
    of ``certs``. Returns the detail of the passed check."""
    from cryptography.hazmat.primitives.serialization import Encoding

    if crl.issuer != ark.subject:
        raise EvidenceRejected(CHECK_CRL, f"{source}: CRL issued by "
                               f"'{crl.issuer.rfc4514_string()}', not by '{common_name(ark)}'")
    if not _signed(crl.public_bytes(Encoding.DER), ark.public_bytes(Encoding.DER)):
        raise EvidenceRejected(CHECK_CRL, f"{source}: CRL signature does not verify with the "
                               f"pinned '{common_name(ark)}'")
    last, next_update = crl.last_update_utc, crl.next_update_utc
    if now < last:
        raise EvidenceRejected(CHECK_CRL, f"{source}: CRL issued {last.isoformat()}, after "
                               f"the evaluation time {now.isoformat()}")
    if next_update is None or now > next_update:
        when = next_update.isoformat() if next_update else "never set"
        raise EvidenceRejected(CHECK_CRL, f"{source}: CRL expired: its nextUpdate was {when} "
                               f"(evaluated at {now.isoformat()})")
    for cert in certs:
        revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if revoked is not None:
            raise EvidenceRejected(
                CHECK_CRL, f"'{common_name(cert)}' (serial {cert.serial_number:x}) is revoked "
                f"by {source} since {revoked.revocation_date_utc.isoformat()}")
    return f"{source}: {', '.join(repr(common_name(c)) for c in certs)} not revoked"
