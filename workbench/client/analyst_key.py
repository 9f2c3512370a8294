"""The analyst's long-term key for Python frontends: one EC P-256 key in a 0600 file.

``workbench analyst keygen --out FILE`` writes the private key (PKCS#8 PEM, mode 0600)
and ``FILE.pub.jwk`` (its public JWK) for the data owner to register with ``workbench kbs
analyst add NAME --public-key FILE.pub.jwk``; the fingerprint it prints is what the data
owner's ``workbench kbs analyst list`` shows. The browser keeps its own key (IndexedDB,
non-extractable).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from workbench.errors import InputError, WorkbenchError
from workbench.sealed.certificate import fingerprint, jwk_of

PUBLIC_SUFFIX = ".pub.jwk"


def public_path(private: Path) -> Path:
    return private.with_name(private.name + PUBLIC_SUFFIX)


def generate(out: Path) -> tuple[Path, str]:
    """Write a new key to ``out`` (0600) and its public JWK beside it; refuse to replace."""
    if out.exists() or public_path(out).exists():
        raise WorkbenchError(f"{out} (or {public_path(out).name}) exists already: an "
                             "analyst key is never overwritten; choose another path")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = jwk_of(key.public_key())
    public_path(out).write_text(json.dumps(public, indent=2) + "\n")
    return public_path(out), fingerprint(public)


def load(path: Path) -> ec.EllipticCurvePrivateKey:
    """The analyst key in ``path``; InputError naming the file and the cause otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"analyst key {path}: cannot be read ({err.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InputError(f"analyst key {path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            not isinstance(key.curve, ec.SECP256R1):
        raise InputError(f"analyst key {path}: not an EC P-256 key")
    return key
