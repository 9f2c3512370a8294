"""Intel certificate chains (PCK chains in quotes, TCB signing chains in collateral).

A chain is checked in a fixed order: its root is the pinned Intel SGX Root CA byte for
byte (a test root with the same name is refused here), each position holds the expected
kind of certificate, each certificate is signed by the next, and each is valid at ``now``.

Caching, and why it is sound: everything but the time check is a pure function of the
certificates' DER bytes (a signature's validity depends only on the signed bytes and the
issuer's key, both inside those bytes; the pinned root is fixed). So the outcome of the
pinning, name and signature checks is cached keyed by the DER bytes, together with the
summaries shown to people. Validity periods are compared with ``now`` on every call, and
revocation is checked by the caller on every call. A broker verifies many quotes from one
platform, whose chain is the same each time; this keeps verification well under 2 ms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ

from workbench.attestation.verify import certs, pinned
from workbench.attestation.verify.result import CertSummary, EvidenceRejected

# What `cryptography` raises for damaged certificates, at load or on first access to a
# lazily decoded field: not all of these are ValueError.
CERT_DECODE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)


@dataclass(frozen=True)
class CertChain:
    """Certificates leaf first, with their DER bytes (the identity used for caching)."""

    ders: tuple[bytes, ...]
    certs: tuple[x509.Certificate, ...] = field(compare=False, repr=False)

    @classmethod
    def of(cls, chain: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> CertChain:
        return cls(tuple(c.public_bytes(Encoding.DER) for c in chain), tuple(chain))

    def __len__(self) -> int:
        return len(self.ders)


@dataclass(frozen=True)
class ChainFacts:
    """What a cached chain check established (or the reason it failed)."""

    failure: str | None
    leaf_key: ec.EllipticCurvePublicKey | None = None


def _split_der(data: bytes) -> list[bytes]:
    """Split concatenated DER certificates; pyasn1 frames each one."""
    parts = []
    while data:
        try:
            _value, rest = der_decoder.decode(data, asn1Spec=univ.Any())
        except (PyAsn1Error, ValueError, TypeError) as err:
            raise ValueError(f"not a DER certificate sequence ({err})") from None
        parts.append(data[: len(data) - len(rest)])
        data = rest
    return parts


@lru_cache(maxsize=64)
def load_pck_chain(data: bytes) -> CertChain:
    """Certification data type 5 as a chain, leaf first. Raises ValueError.

    Intel's quote generation writes PEM, leaf first (sometimes NUL-terminated); Intel's QVL
    sample quotes carry concatenated DER, root first. Both are accepted: which root the
    chain ends at is decided by pinning, not here.
    """
    data = data.rstrip(b"\x00")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            chain = list(certs.load_pem_bundle(data))
        else:
            chain = [x509.load_der_x509_certificate(part) for part in _split_der(data)]
        if len(chain) > 1 and chain[0].subject == chain[0].issuer:
            chain.reverse()
        return CertChain.of(chain)
    except CERT_DECODE_ERRORS as err:
        raise ValueError(str(err) or type(err).__name__) from None


@lru_cache(maxsize=64)
def _facts(chain: CertChain, names: tuple[tuple[str, ...], ...]) -> ChainFacts:
    # `cryptography` decodes certificate fields lazily: a damaged name or key surfaces on
    # first access, which is a refusal like any other.
    try:
        return _establish(chain, names)
    except CERT_DECODE_ERRORS as err:
        return ChainFacts(f"holds a certificate that does not decode ({err})")


def _establish(chain: CertChain, names: tuple[tuple[str, ...], ...]) -> ChainFacts:
    root = pinned.intel_sgx_root()
    last = chain.certs[-1]
    # Compared by the whole DER encoding: a same-named test root must not pass.
    if chain.ders[-1] != pinned.intel_sgx_root_der():
        return ChainFacts(
            f"ends at '{certs.common_name(last)}' (SHA-256 {certs.fingerprint(last)}), which "
            f"is not the pinned Intel SGX Root CA (SHA-256 {certs.fingerprint(root)}): root "
            "pinning refuses it"
        )
    for cert, allowed in zip(chain.certs, names, strict=False):
        name = certs.common_name(cert)
        if name not in allowed:
            wanted = " or ".join(repr(a) for a in allowed)
            return ChainFacts(f"has '{name}' where {wanted} belongs")
    # The last link is the pinned root's self-signature, checked when the pin was loaded.
    for cert, issuer in zip(chain.certs[:-1], chain.certs[1:], strict=True):
        try:
            certs.check_issued_by(cert, issuer, "chain")
        except EvidenceRejected as err:
            return ChainFacts(f"is broken: {err.reason}")
    key = chain.certs[0].public_key()
    return ChainFacts(None, key if isinstance(key, ec.EllipticCurvePublicKey) else None)


@lru_cache(maxsize=64)
def summaries(chain: CertChain) -> tuple[CertSummary, ...]:
    """What the verdict shows of a chain (names, validity, fingerprints), computed only for
    the chains a verdict shows."""
    subjects = [c.subject.rfc4514_string() for c in chain.certs]
    # Only called for a chain check_chain accepted: verify_directly_issued_by refused any
    # certificate whose issuer name is not the next one's subject, and the last is the
    # pinned (self-issued) root; so each name is rendered once.
    issuers = [*subjects[1:], subjects[-1]]
    return tuple(
        CertSummary(subject, issuer, cert.not_valid_before_utc, cert.not_valid_after_utc,
                    hashlib.sha256(der).hexdigest())
        for cert, der, subject, issuer in zip(chain.certs, chain.ders, subjects, issuers,
                                              strict=True))


def check_chain(
    chain: CertChain,
    now: datetime,
    check: str,
    what: str,
    names: tuple[tuple[str, ...], ...],
) -> ChainFacts:
    """Check ``chain`` (leaf first, ending at the root) as described in the module doc.

    ``names[i]`` lists the common names allowed at position ``i``. Raises EvidenceRejected.
    """
    facts = _facts(chain, names)
    if facts.failure is not None:
        raise EvidenceRejected(check, f"{what} {facts.failure}")
    for cert in chain.certs:
        certs.check_validity(cert, now, check)
    return facts


def clear_caches() -> None:
    """Forget cached chains (benchmarks use it to time a first verification)."""
    load_pck_chain.cache_clear()
    _facts.cache_clear()
    summaries.cache_clear()
