"""Verify simulated-TEE evidence: a trusted platform key signed exactly these claims.

``trusted_keys=None`` trusts the local development platform key's public half if it exists
(``$WORKBENCH_HOME/simulated-tee/platform-key.pub.pem``) and nothing otherwise. Keys may be
given as PEM bytes, a path to a PEM file, a JWK dict, a jwcrypto JWK or a ``cryptography``
public key. Verification says nothing about whether simulation is acceptable: that is the
policy's ``allow_simulation``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench.attestation.formats.simulated import SIGNATURE_ALGORITHMS, parse_simulated
from workbench.attestation.verify import platform_key
from workbench.attestation.verify.result import Check, EvidenceRejected, VerifiedEvidence

TrustedKey = bytes | str | Path | dict[str, Any] | JWK | ec.EllipticCurvePublicKey


def _to_public_key(key: TrustedKey) -> ec.EllipticCurvePublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key
    if isinstance(key, str | Path):
        stat = Path(key).stat()
        return _public_key_file(str(key), stat.st_mtime_ns, stat.st_size)
    if isinstance(key, dict):
        key = JWK.from_json(json.dumps(key))
    if isinstance(key, JWK):
        loaded = key.get_op_key("verify")
    else:
        loaded = load_pem_public_key(bytes(key))
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ValueError("a simulated platform key must be an EC public key")
    return loaded


# A broker verifies every request against the same few trusted keys: parse each file once
# per version of it (path, mtime, size), so replacing the file still takes effect.
@functools.lru_cache(maxsize=32)
def _public_key_file(path: str, _mtime_ns: int, _size: int) -> ec.EllipticCurvePublicKey:
    return _to_public_key(Path(path).read_bytes())


@functools.lru_cache(maxsize=32)
def _verifier(public_pem: bytes) -> JWK:
    """The jwcrypto key for a trusted public key; keyed by its bytes, so never stale."""
    return JWK.from_pem(public_pem)


@functools.lru_cache(maxsize=256)
def _header_key(canonical_jwk: str) -> ec.EllipticCurvePublicKey:
    return JWK.from_json(canonical_jwk).get_op_key("verify")


def trusted_key_set(
    trusted_keys: Iterable[TrustedKey] | None, home: Path | None = None
) -> dict[str, ec.EllipticCurvePublicKey]:
    """Fingerprint -> public key for the keys to trust (see module docstring for None)."""
    if trusted_keys is None:
        local = platform_key.public_key_path(home)
        trusted_keys = [local] if local.is_file() else []
    result = {}
    for number, key in enumerate(trusted_keys, 1):
        label = str(key) if isinstance(key, str | Path) else f"number {number}"
        try:
            public = _to_public_key(key)
        except (OSError, ValueError, TypeError, JWException) as err:
            raise ValueError(f"trusted simulated platform key {label} is unusable: "
                             f"{getattr(err, 'strerror', None) or err}") from None
        result[platform_key.fingerprint(public)] = public
    return result


def verify_simulated(
    data: bytes,
    *,
    now: datetime,
    trusted_keys: Iterable[TrustedKey] | None = None,
    home: Path | None = None,
) -> VerifiedEvidence:
    """Check the envelope's signature by a trusted platform key. ``now`` is for the record only:
    freshness (maximum age) is a policy decision made in appraisal."""
    evidence = parse_simulated(data)
    checks = [Check("format", True, "simulated-TEE envelope v1")]
    try:
        header_key = _header_key(json.dumps(evidence.public_jwk, sort_keys=True))
    except (JWException, ValueError) as err:
        raise EvidenceRejected(
            "platform-key",
            f"header carries no valid {SIGNATURE_ALGORITHMS[evidence.alg][0]} public key ({err})",
            tuple(checks),
        ) from None
    presented = platform_key.fingerprint(header_key)
    if presented != evidence.platform_key:
        raise EvidenceRejected(
            "platform-key",
            f"payload names platform key {evidence.platform_key} but the header carries "
            f"{presented}",
            tuple(checks),
        )
    trusted = trusted_key_set(trusted_keys, home)
    if presented not in trusted:
        where = (
            f"trusted: {', '.join(sorted(trusted))}" if trusted
            else f"no trusted simulated platform key (none given and none at "
                 f"{platform_key.public_key_path(home)})"
        )
        raise EvidenceRejected(
            "platform-key",
            f"signed by untrusted platform key sha256:{presented} ({where})",
            tuple(checks),
        )
    checks.append(Check("platform-key", True, f"trusted development key sha256:{presented}"))
    jws = JWS()
    try:
        jws.deserialize(evidence.compact_jws)
        pem = trusted[presented].public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        jws.verify(_verifier(pem), alg=evidence.alg)
    except JWException as err:
        raise EvidenceRejected(
            "signature",
            f"{evidence.alg} signature does not verify with platform key sha256:{presented} "
            f"({err})",
            tuple(checks),
        ) from None
    checks.append(Check("signature", True, f"{evidence.alg} by the platform key"))
    claims = {
        "measurement": evidence.measurement,
        "platform_key": presented,
        "debug": False,
        "report_data": evidence.report_data.hex(),
        "runtime": evidence.runtime,
        "covers": evidence.covers,
        "timestamp": evidence.timestamp.isoformat(),
    }
    return VerifiedEvidence(
        tee="simulated",
        claims=claims,
        report_data=evidence.report_data,
        checks=tuple(checks),
        simulated=True,
        evidence_time=evidence.timestamp,
        extra={"verified_at": now.isoformat()},
    )
