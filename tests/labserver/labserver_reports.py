"""Kernel reports made with the real pieces: simulated-TEE evidence, real appraisal, a real
ES256 EAR token, so the server extension checks exactly what a kernel would forward."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jwcrypto.jwk import JWK

from workbench.attestation.appraise import appraise, load_policy
from workbench.attestation.appraise.ear import issue_token
from workbench.attestation.tee.binding import report_data_for
from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.attestation.verify import verify_evidence

ISSUER = "http://127.0.0.1:1"


def tee_key() -> JWK:
    return JWK.generate(kty="EC", crv="P-256")


def public(key: JWK) -> dict[str, Any]:
    exported = key.export_public(as_dict=True)
    return {"kty": "EC", "crv": exported["crv"], "x": exported["x"], "y": exported["y"],
            "alg": "ECDH-ES+A256KW"}


def sim_policy(provider: SimulatedProvider, **overrides: Any) -> dict[str, Any]:
    policy = {
        "id": "labserver-test",
        "allowed_tee": ["simulated"],
        "allow_simulation": True,
        "reference_values": {"simulated": {"measurement": provider.measurement().measurement}},
    }
    policy.update(overrides)
    return policy


@dataclass
class Made:
    body: dict[str, Any]
    measurement: str
    nonce: str


def make_report(
    provider: SimulatedProvider,
    broker_key: JWK,
    *,
    policy: dict[str, Any] | None = None,
    kernel_key: JWK | None = None,
    bound_key: JWK | None = None,
    evidence_nonce: str | None = None,
    now: datetime | None = None,
    lifetime_s: int = 300,
    extra: dict[str, Any] | None = None,
) -> Made:
    """A report as the kernel would send it. ``bound_key`` is the key the token binds
    (default: the kernel's); ``evidence_nonce`` makes evidence for another challenge."""
    now = now or datetime.now(UTC)
    kernel_key = kernel_key or tee_key()
    kernel_public = public(kernel_key)
    bound_public = public(bound_key) if bound_key is not None else kernel_public
    nonce = base64.b64encode(uuid.uuid4().bytes).decode()
    data = provider.evidence(report_data_for(evidence_nonce or nonce, bound_public))
    evidence = verify_evidence(data, now=now)
    appraisal = appraise(evidence, load_policy(policy or sim_policy(provider)), now=now,
                         expected_report_data=report_data_for(nonce, bound_public))
    claims = {"tee-pubkey": bound_public, "workbench.resources": {}}
    claims.update(extra or {})
    token = issue_token(appraisal, evidence, signing_key=broker_key, issuer=ISSUER,
                        nonce=nonce, lifetime_s=lifetime_s, now=now, extra=claims)
    body = {"token": token, "tee_pubkey": kernel_public,
            "evidence": base64.b64encode(data).decode(), "nonce": nonce}
    return Made(body, provider.measurement().measurement, nonce)


def tamper_payload(token: str, change: dict[str, Any]) -> str:
    """The same signature over a changed payload."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(change)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"
