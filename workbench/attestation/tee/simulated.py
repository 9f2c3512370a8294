"""The simulated TEE: evidence for machines without TEE hardware, and never mistaken for it.

Evidence is the envelope described in ``formats.simulated``: the install's measurement
(``tee.measure``), the caller's 64-byte report data and a timestamp, signed (ES256) by the
development platform key at ``$WORKBENCH_HOME/simulated-tee/platform-key.pem``, created
0600 on first use (P-256, signing ES256; a P-384 key left by an earlier version signs
ES384). Every layer says ``simulated``: the envelope, the payload, the verified
result and the EAR token; a policy accepts it only with ``allow_simulation: true``.

The key is as trustworthy as the account that owns the file: this proves which code ran
only to someone who trusts this machine's user. That is the point of the name.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from workbench.attestation.formats.simulated import ENVELOPE_TYPE, ENVELOPE_VERSION
from workbench.attestation.tee.binding import REPORT_DATA_SIZE
from workbench.attestation.tee.measure import Measurement, measure_install
from workbench.attestation.verify import platform_key
from workbench.errors import WorkbenchError

PRIVATE_MODE = 0o600
# Group or world access to the private key makes every signature meaningless.
_FORBIDDEN_BITS = stat.S_IRWXG | stat.S_IRWXO
# Curve of a platform key -> the JWS alg it signs with (formats.simulated accepts both).
SIGNING_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # O_EXCL: if another process created the key first, we load theirs instead.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    mode = path.stat().st_mode
    if mode & _FORBIDDEN_BITS:
        raise WorkbenchError(
            f"{path}: platform key is accessible to other users "
            f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 on it"
        )
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise WorkbenchError(f"{path}: not a PEM private key ({err})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in SIGNING_ALGS:
        raise WorkbenchError(f"{path}: platform key must be an ECDSA P-256 (or P-384) key")
    return key


def load_or_create_platform_key(home: Path | None = None) -> ec.EllipticCurvePrivateKey:
    """The development platform key, created on first use; its public half written beside it."""
    path = platform_key.private_key_path(home)
    try:
        key = _create_key(path)
    except FileExistsError:
        key = _load_key(path)
    public = platform_key.public_key_path(home)
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if not public.exists() or public.read_bytes() != pem:
        public.write_bytes(pem)
    return key


class SimulatedProvider:
    """Evidence provider for the simulated TEE (``get_provider("simulated")``)."""

    name = "simulated"
    tee = "simulated"

    def __init__(
        self,
        *,
        home: Path | None = None,
        package_dir: Path | None = None,
        kernels_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._home = home
        self._package_dir = package_dir
        self._kernels_dir = kernels_dir
        self._clock = clock or (lambda: datetime.now(UTC))
        self._measurement: Measurement | None = None
        self._signer: tuple[JWK, str, dict[str, str], str] | None = None

    def measurement(self) -> Measurement:
        # The code of a running kernel does not change under it: measure once per provider.
        if self._measurement is None:
            self._measurement = measure_install(self._package_dir, self._kernels_dir)
        return self._measurement

    def _platform_signer(self) -> tuple[JWK, str, dict[str, str], str]:
        """The platform key as (signing JWK, alg, public JWK members, fingerprint), loaded once."""
        if self._signer is None:
            key = load_or_create_platform_key(self._home)
            jwk = JWK.from_pyca(key)
            public_jwk = {k: v for k, v in jwk.export_public(as_dict=True).items()
                          if k in ("kty", "crv", "x", "y")}
            self._signer = (jwk, SIGNING_ALGS[key.curve.name], public_jwk,
                            platform_key.fingerprint(key.public_key()))
        return self._signer

    def evidence(self, report_data: bytes) -> bytes:
        if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report data must be exactly {REPORT_DATA_SIZE} bytes")
        jwk, alg, public_jwk, fingerprint = self._platform_signer()
        measured = self.measurement()
        payload = {
            "tee": "simulated",
            "simulated": True,
            "debug": False,
            "measurement": measured.measurement,
            "report_data": bytes(report_data).hex(),
            "platform_key": fingerprint,
            "timestamp": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "runtime": {
                "implementation": measured.interpreter.split(" ", 1)[0],
                "version": measured.interpreter.split(" ", 1)[1],
            },
            "covers": measured.covers(),
        }
        header = {"alg": alg, "typ": ENVELOPE_TYPE, "jwk": public_jwk}
        jws = JWS(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        jws.add_signature(jwk, alg=alg, protected=json.dumps(header, sort_keys=True))
        protected, body, signature = jws.serialize(compact=True).split(".")
        envelope = {
            "type": ENVELOPE_TYPE,
            "version": ENVELOPE_VERSION,
            "simulated": True,
            "protected": protected,
            "payload": body,
            "signature": signature,
        }
        return json.dumps(envelope, indent=2).encode("utf-8") + b"\n"


__all__ = ["SimulatedProvider", "load_or_create_platform_key"]
