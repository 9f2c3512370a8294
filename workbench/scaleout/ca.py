"""The kernel as the cluster's certificate authority: its key is made here and never leaves.

Every certificate it issues is short-lived and names its holder's role (client, scheduler,
worker) in the subject's OU, so the audit of a connection can say who was on the other end.
A worker's certificate is made from a CSR signed with the worker's attested ephemeral key:
the TLS identity of a worker is the key the broker saw bound in its evidence.
"""

from __future__ import annotations

import datetime as dt
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from workbench.errors import WorkbenchError

# Long enough for a day's analysis; the CA itself dies with the kernel.
LIFETIME = dt.timedelta(hours=24)
ROLES = ("client", "scheduler", "worker")


class CsrInvalid(WorkbenchError):
    """A certificate request that is not one the CA signs."""


def _name(common: str, role: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "workbench cluster"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def make_csr(key: ec.EllipticCurvePrivateKey, common: str) -> str:
    """A CSR for ``key`` (its signature proves the requester holds the private key)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common, "worker"))
    return csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def read_csr(pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as err:
        raise CsrInvalid(f"the certificate request is not a PEM CSR ({err})") from None
    if not csr.is_signature_valid:
        raise CsrInvalid("the certificate request's signature does not verify")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise CsrInvalid("the certificate request is not for an EC key")
    return csr


class ClusterCA:
    """An in-memory CA: ``issue`` signs a public key, ``pair`` makes a key and its cert."""

    def __init__(self, cluster_id: str | None = None) -> None:
        self.cluster_id = cluster_id or uuid.uuid4().hex[:12]
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = _name(f"workbench cluster {self.cluster_id} CA", "ca")
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self._key, hashes.SHA256()))

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(self, public_key: ec.EllipticCurvePublicKey, common: str, role: str) -> str:
        """A certificate (PEM) for ``public_key`` as ``role``; TLS client and server use."""
        if role not in ROLES:
            raise ValueError(f"unknown cluster role {role!r}")
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(_name(common, role))
            .issuer_name(self.certificate.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(self._key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def pair(self, common: str, role: str) -> tuple[str, str]:
        """A fresh key and its certificate (PEM, PEM) for a party that is not attested
        (the kernel's own client, the scheduler that never sees data or keys)."""
        key = ec.generate_private_key(ec.SECP256R1())
        return self.issue(key.public_key(), common, role), private_pem(key)
