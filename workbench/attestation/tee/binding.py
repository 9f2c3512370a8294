"""The one place where evidence is bound to a session: the 64-byte report-data value.

A kernel asks its TEE for evidence whose report data is ``report_data_for(nonce, tee_pubkey,
transport_key)``; the key broker recomputes the same value from the nonce it issued and the
public key the kernel presented, and appraisal refuses evidence whose report data differs.
That ties the evidence to this session (the nonce: no replay) and to the key the released
secrets will be encrypted to (the JWK: no relay to another key).

Encoding, version 1 (every input is length-prefixed, so no two different input triples
produce the same byte string, and a domain tag keeps the hash from meaning anything else)::

    report_data = SHA-512(
        b"workbench-report-data-v1\\x00"
        || u32be(len(N)) || N     N = the nonce, UTF-8 encoded, exactly as issued
        || u32be(len(T)) || T     T = RFC 7638 JWK thumbprint of tee_pubkey, SHA-256, 32 raw bytes
        || u32be(len(K)) || K     K = the transport key bytes (empty when there is none)
    )

Version 2, used only when the kernel is locked to a frontend's sealed-session key
(docs/sealed-sessions.md), adds that key as a fourth field under its own domain tag, so a
value computed without it can never equal one computed with it::

    report_data = SHA-512(
        b"workbench-report-data-v2\x00"
        || u32be(len(N)) || N || u32be(len(T)) || T || u32be(len(K)) || K
        || u32be(len(S)) || S     S = the session key, uncompressed P-256 point, 65 bytes
    )

SHA-512 gives exactly the 64 bytes every TEE offers (SGX/TDX REPORTDATA, SNP REPORT_DATA,
configfs-tsm inblob). A TPM quote is the exception: its extraData is a TPM2B_DATA, which
holds one digest of the TPM's largest hash, 48 bytes on Azure's vTPM (SHA-384), so the Azure
vTPM provider quotes with the binding's first ``TPM_BINDING_SIZE`` bytes and
``binding_matches`` accepts exactly that prefix from 48-byte report data (SHA-512
truncated to 384 bits, still a collision-resistant commitment to the same inputs).

The thumbprint covers only the key's required public members, so
private members in ``tee_pubkey`` or extra fields such as ``kid`` do not change the binding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK

# Re-exported: callers that compute a binding compare it from here too.
from workbench.attestation.verify.binding_match import BOUND_SIZES as BOUND_SIZES
from workbench.attestation.verify.binding_match import REPORT_DATA_SIZE as REPORT_DATA_SIZE
from workbench.attestation.verify.binding_match import TPM_BINDING_SIZE as TPM_BINDING_SIZE
from workbench.attestation.verify.binding_match import binding_matches as binding_matches

DOMAIN = b"workbench-report-data-v1\x00"
SESSION_DOMAIN = b"workbench-report-data-v2\x00"
# An uncompressed P-256 point: what a frontend's sealed-session public key is bound as.
SESSION_KEY_BYTES = 65
CERTIFICATE_DIGEST_BYTES = 32
# A nonce is a short token from the broker; anything much longer is a caller bug.
MAX_NONCE_BYTES = 1024


class BindingError(ValueError):
    """The inputs cannot be bound (not a JWK, nonce empty or too long)."""


def _length_prefixed(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def jwk_thumbprint(tee_pubkey: dict[str, Any]) -> bytes:
    """RFC 7638 thumbprint (SHA-256) of a JWK given as a dict, as 32 raw bytes."""
    if not isinstance(tee_pubkey, dict):
        raise BindingError(f"tee public key must be a JWK object, not {type(tee_pubkey).__name__}")
    try:
        key = JWK.from_json(json.dumps(tee_pubkey))
        encoded = key.thumbprint()
    except (JWException, ValueError, TypeError, KeyError) as err:
        raise BindingError(f"tee public key is not a valid JWK ({err})") from err
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


def report_data_for(nonce: str, tee_pubkey: dict[str, Any], transport_key: bytes = b"",
                    session_key: bytes = b"", certificate: bytes = b"") -> bytes:
    """The 64-byte report data binding ``nonce``, ``tee_pubkey``, ``transport_key`` and,
    for a kernel locked to a sealed session, the frontend's ``session_key`` and, when the
    analyst certified that session, the ``certificate``'s digest (SHA-256, 32 bytes)."""
    if not isinstance(nonce, str) or not nonce:
        raise BindingError("nonce must be a non-empty string")
    nonce_bytes = nonce.encode("utf-8")
    if len(nonce_bytes) > MAX_NONCE_BYTES:
        raise BindingError(f"nonce is {len(nonce_bytes)} bytes; at most {MAX_NONCE_BYTES}")
    if not isinstance(transport_key, bytes | bytearray):
        raise BindingError("transport key must be bytes")
    if not isinstance(session_key, bytes | bytearray) or \
            len(session_key) not in (0, SESSION_KEY_BYTES):
        raise BindingError(f"a session key is an uncompressed P-256 point of "
                           f"{SESSION_KEY_BYTES} bytes")
    fields = (_length_prefixed(nonce_bytes) + _length_prefixed(jwk_thumbprint(tee_pubkey))
              + _length_prefixed(bytes(transport_key)))
    if certificate and (not session_key or len(certificate) != CERTIFICATE_DIGEST_BYTES):
        raise BindingError("a certificate digest (32 bytes) is bound only with a session key")
    certified = _length_prefixed(bytes(certificate)) if certificate else b""
    body = (SESSION_DOMAIN + fields + _length_prefixed(bytes(session_key)) + certified
            if session_key else DOMAIN + fields)
    digest = hashlib.sha512(body).digest()
    assert len(digest) == REPORT_DATA_SIZE
    return digest
