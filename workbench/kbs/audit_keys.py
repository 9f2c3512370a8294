"""The keys ``audit verify`` trusts: the broker's own, from outside the database it checks.

Sources: JWK or JWK-set files (``--keys``; the broker's key file or the data owner's copy),
the broker's published set (``--jwks URL``), and fingerprints (``--fingerprint``, the RFC
7638 thumbprint ``workbench kbs fingerprint`` prints). A key listed in the database's
``broker_keys`` table is used only when a fingerprint pins it: the table alone proves
nothing, since whoever rewrites the log can insert their own key there. With no source
named, the broker's key file beside the store is the default; without it, verification is
refused rather than trusting the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK

from workbench.errors import InputError, about
from workbench.protocol.jwks import MAX_JWKS_BYTES, JwksProblem, fetch_jwks, keys_from_document

FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9_-]{43}$")
NO_SOURCE = ("no broker key to verify the audit log against: give --keys FILE (the broker's "
             "key file, broker-keys.jwks in its home, or your copy of it), --jwks URL (the "
             "broker's /.well-known/jwks.json) or --fingerprint SHA256:... (as `workbench kbs "
             "fingerprint` printed it); keys found in the database being checked are never "
             "trusted on their own")


@dataclass
class TrustedKeys:
    """Verifying keys by kid (the RFC 7638 thumbprint the broker signs under)."""
    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def add(self, jwk: JWK, source: str) -> None:
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise InputError(about(source, f"not an EC P-256 key ({jwk.thumbprint()}; the "
                                           "broker signs with ES256)"))
        self.keys[jwk.thumbprint()] = jwk.get_op_key("verify")
        self.sources.append(f"SHA256:{jwk.thumbprint()} from {source}")


def keys_from_file(path: str) -> list[JWK]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as err:
        raise InputError(about(path, f"cannot read broker keys ({err.strerror or err})")) \
            from None
    if len(raw) > MAX_JWKS_BYTES:
        raise InputError(about(path, f"key file is larger than {MAX_JWKS_BYTES} bytes"))
    try:
        return keys_from_document(json.loads(raw), path)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(about(path, f"not a JWK or JWK set ({err})")) from None
    except JwksProblem as err:
        raise InputError(str(err)) from None


def _from_url(url: str) -> list[JWK]:
    try:
        return fetch_jwks(url, timeout_s=10.0)
    except JwksProblem as err:
        raise InputError(str(err)) from None


def check_fingerprints(pins: Sequence[str]) -> None:
    bad = [pin for pin in pins if not FINGERPRINT.match(pin)]
    if bad:
        raise InputError(f"{bad[0]}: not a broker key fingerprint (SHA256: and 43 base64url "
                         "characters, as `workbench kbs fingerprint` prints)")


def trusted_keys(*, files: Sequence[str], urls: Sequence[str], pins: Sequence[str],
                 stored: Iterable[ec.EllipticCurvePublicKey],
                 default_file: Path) -> TrustedKeys:
    """The broker's keys from the named sources (``stored``: the keys in the database's own
    table, used only where a pin names one); ``default_file`` when no source is named."""
    check_fingerprints(pins)
    # By the thumbprint of the key itself: a row's kid column is as writable as the rest.
    by_print = {JWK.from_pyca(key).thumbprint(): key for key in stored}
    if not (files or urls or pins):
        if not default_file.is_file():
            raise InputError(f"{NO_SOURCE} (no key file at {default_file})")
        files = [str(default_file)]
    trusted = TrustedKeys()
    for path in files:
        for jwk in keys_from_file(path):
            trusted.add(jwk, path)
    for url in urls:
        for jwk in _from_url(url):
            trusted.add(jwk, url)
    for pin in pins:
        kid = pin.removeprefix("SHA256:")
        if kid in trusted.keys:
            continue
        if kid not in by_print:
            raise InputError(f"{pin}: no key with this fingerprint in the named key sources "
                             "or the database: the broker's key is not there (wrong "
                             "fingerprint, or the database's keys were replaced)")
        trusted.add(JWK.from_pyca(by_print[kid]), f"the database, pinned by {pin}")
    return trusted
