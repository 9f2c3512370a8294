"""A TEST certificate authority for CRLs the real roots cannot sign.

Intel's and AMD's root keys are not ours, so a CRL that revokes something can only be made
with a test CA. Tests use it two ways: handed to the verifier's own CRL checks with the
test CA as the issuer (the check that would refuse the revoked certificate), and served in
place of a real CRL, where the pinned root must refuse its signature.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_root(cn: str, key) -> x509.Certificate:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(start).not_valid_after(start + timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    return builder.sign(key, hashes.SHA256())


# Stand-in serials: ``cryptography`` refuses to build entries for serials of 160 bits, which
# Intel's CAs use; entries are built with these and the real serials put in afterwards.
_PLACEHOLDER = 0x5A5A


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(data):
        tag, first = data[at], data[at + 1]
        at += 2
        if first & 0x80:
            size = int.from_bytes(data[at:at + (first & 0x7F)], "big")
            at += first & 0x7F
        else:
            size = first
        out.append((tag, data[at:at + size]))
        at += size
    return out


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(value)) + value


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return _tlv(0x02, raw)


def _swap_serials(tbs: bytes, serials: list[int]) -> bytes:
    """Re-encode a TBSCertList with the placeholder serials replaced, in order."""
    fields = _tlvs(_tlvs(tbs)[0][1])
    pending = list(serials)
    out = b""
    for tag, value in fields:
        if tag == 0x30 and pending and _tlvs(value) and _tlvs(_tlvs(value)[0][1])[0][0] == 0x02:
            entries = b""
            for _, entry in _tlvs(value):
                parts = _tlvs(entry)
                rest = b"".join(_tlv(t, v) for t, v in parts[1:])
                entries += _tlv(0x30, _der_int(pending.pop(0)) + rest)
            out += _tlv(0x30, entries)
        else:
            out += _tlv(tag, value)
    return _tlv(0x30, out)


def crl(issuer_cn: str | x509.Name, key, revoked_serials: list[int], *, last: datetime,
        next_update: datetime, pss: bool = False) -> bytes:
    """A CRL signed by ``key`` (ECDSA SHA-256, or RSASSA-PSS SHA-384 as AMD's ARK signs)."""
    placeholders = [_PLACEHOLDER + i for i in range(len(revoked_serials))]
    der = _build(issuer_cn, key, placeholders, last, next_update, pss)
    if not revoked_serials:
        return der
    outer = _tlvs(_tlvs(der)[0][1])
    tbs = _swap_serials(_tlv(*outer[0]), revoked_serials)
    if pss:
        signature = key.sign(tbs, padding.PSS(mgf=padding.MGF1(hashes.SHA384()),
                                              salt_length=48), hashes.SHA384())
    else:
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs + _tlv(*outer[1]) + _tlv(0x03, b"\x00" + signature))


def _build(issuer_cn: str | x509.Name, key, revoked_serials: list[int], last: datetime,
           next_update: datetime, pss: bool) -> bytes:
    issuer = issuer_cn if isinstance(issuer_cn, x509.Name) else name(issuer_cn)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer)
               .last_update(last).next_update(next_update))
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(last).build())
    if pss:
        signed = builder.sign(key, hashes.SHA384(), rsa_padding=padding.PSS(
            mgf=padding.MGF1(hashes.SHA384()), salt_length=48))
    else:
        signed = builder.sign(key, hashes.SHA256())
    return signed.public_bytes(Encoding.DER)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
