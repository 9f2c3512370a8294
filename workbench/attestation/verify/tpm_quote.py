"""Verify a TPM 2.0 quote: its RSA signature, the nonce in extraData, the PCR digest.

The quote is RSASSA-PKCS1-v1_5 with SHA-256 over the TPMS_ATTEST message (what Azure's
vTPM attestation key signs). Each step is a named check; the first that fails raises
:class:`EvidenceRejected` with the checks run so far, like the hardware verifiers.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwcrypto import jwk
from jwcrypto.common import JWException

from workbench.attestation.formats.azure_hcl import RsaJwk
from workbench.attestation.formats.tpm_quote import TpmQuote
from workbench.attestation.verify.result import Check, EvidenceRejected

CHECK_AK = "attestation-key"
CHECK_SIGNATURE = "tpm-quote-signature"
CHECK_NONCE = "tpm-nonce"
CHECK_PCR_DIGEST = "pcr-digest"
CHECKS = (CHECK_SIGNATURE, CHECK_NONCE, CHECK_PCR_DIGEST)
# The quote's pcrDigest is hashed with the signing scheme's hash, SHA-256 here.
PCR_DIGEST_HASH = "sha256"
MIN_AK_BITS = 2048


@lru_cache(maxsize=64)
def _rsa_key(n: str, e: str) -> rsa.RSAPublicKey:
    # key_ops is left out on purpose: Azure labels the AK "sign" on some VMs and "encrypt" on
    # others, so the label proves nothing; the quote signature is what shows the key signs.
    key = jwk.JWK(kty="RSA", n=n, e=e).get_op_key("verify")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def attestation_key(ak: RsaJwk | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    """The RSA key of an ``HCLAkPub`` JWK (or the key itself), at least 2048 bits."""
    if isinstance(ak, rsa.RSAPublicKey):
        key = ak
    else:
        try:
            key = _rsa_key(ak.n, ak.e)
        except (JWException, ValueError, TypeError) as err:
            raise EvidenceRejected(CHECK_AK, f"HCLAkPub is not a usable RSA key ({err})") from None
    if key.key_size < MIN_AK_BITS:
        raise EvidenceRejected(CHECK_AK, f"HCLAkPub is a {key.key_size}-bit RSA key; at least "
                               f"{MIN_AK_BITS} bits are required")
    return key


def _signature(quote: TpmQuote, key: rsa.RSAPublicKey) -> str:
    try:
        key.verify(quote.signature, quote.message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise EvidenceRejected(
            CHECK_SIGNATURE,
            "the TPM quote is not signed by the attestation key (HCLAkPub) of this HCL "
            "report's variable data: a quote from another VM or another key, or an edited "
            "quote message",
        ) from None
    return f"RSASSA-PKCS1-v1_5 SHA-256 by the {key.key_size}-bit attestation key"


def _nonce(quote: TpmQuote, nonce: bytes | None) -> str:
    extra = quote.attest.extra_data
    if nonce is None:
        return (f"not compared here: extraData {extra.hex()} is the evidence's report data, "
                "for the caller (or the policy's report-data rule) to match")
    if not hmac.compare_digest(extra, bytes(nonce)):
        raise EvidenceRejected(
            CHECK_NONCE,
            f"the TPM quote's extraData {extra.hex()} is not the expected nonce "
            f"{bytes(nonce).hex()} (a replayed or another session's quote)",
        )
    return f"extraData equals the expected nonce ({len(extra)} bytes)"


def _pcr_digest(quote: TpmQuote) -> str:
    banks = {bank.hash_name for bank, _ in quote.attest.selected}
    digest = hashlib.new(PCR_DIGEST_HASH, b"".join(quote.pcrs)).digest()
    if not hmac.compare_digest(digest, quote.attest.pcr_digest):
        raise EvidenceRejected(
            CHECK_PCR_DIGEST,
            f"the PCR values given hash to {digest.hex()}, not to the quote's signed pcrDigest "
            f"{quote.attest.pcr_digest.hex()}: a PCR value was edited",
        )
    return (f"SHA-256 of the {len(quote.pcrs)} PCR values ({', '.join(sorted(banks))} bank) "
            "equals the signed pcrDigest")


def verify_tpm_quote(quote: TpmQuote, ak: RsaJwk | rsa.RSAPublicKey,
                     nonce: bytes | None = None) -> tuple[Check, ...]:
    """Check ``quote``'s signature by ``ak``, its nonce (when given) and its PCR digest.

    Returns the checks passed; raises EvidenceRejected naming the first that fails, with the
    earlier ones in ``checks``.
    """
    done: list[Check] = []
    key = attestation_key(ak)
    steps = ((CHECK_SIGNATURE, lambda: _signature(quote, key)),
             (CHECK_NONCE, lambda: _nonce(quote, nonce)),
             (CHECK_PCR_DIGEST, lambda: _pcr_digest(quote)))
    for name, step in steps:
        try:
            detail = step()
        except EvidenceRejected as err:
            raise EvidenceRejected(name, err.reason, (*done, Check(name, False, err.reason))
                                   ) from None
        done.append(Check(name, True, detail))
    return tuple(done)
