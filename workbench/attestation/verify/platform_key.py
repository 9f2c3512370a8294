"""The simulated TEE's development platform key: where it lives and how it is named.

The provider (``tee.simulated``) creates and uses the private key; the verifier
(``verify.simulated``) trusts the public half by default. Both need the same paths and the
same fingerprint, so they live here rather than in either.

Fingerprint: SHA-256 over the DER SubjectPublicKeyInfo, lower-case hex.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from workbench.home import workbench_home

KEY_DIR_NAME = "simulated-tee"
PRIVATE_KEY_NAME = "platform-key.pem"
PUBLIC_KEY_NAME = "platform-key.pub.pem"


def key_dir(home: Path | None = None) -> Path:
    return (home or workbench_home()) / KEY_DIR_NAME


def private_key_path(home: Path | None = None) -> Path:
    return key_dir(home) / PRIVATE_KEY_NAME


def public_key_path(home: Path | None = None) -> Path:
    return key_dir(home) / PUBLIC_KEY_NAME


def fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
