"""The wire messages of the Trustee KBS attestation protocol (RCAR), version 0.4.0.

Field names follow Trustee's ``kbs-types`` exactly (``extra-params``, ``runtime-data``,
``tee-pubkey``, ``tee-evidence``, ``init-data``); see docs/kbs.md for what we add. The broker
parses requests with these models and clients build their requests with them, so both ends
agree by construction.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = "0.4.0"
SESSION_COOKIE = "kbs-session-id"
PROTOCOL_PREFIX = "/kbs/v0"
AUTH_PATH = f"{PROTOCOL_PREFIX}/auth"
ATTEST_PATH = f"{PROTOCOL_PREFIX}/attest"
RESOURCE_PATH = f"{PROTOCOL_PREFIX}/resource"
# Extension: a JupyterHub token naming the analyst, for resources restricted to users.
IDENTITY_HEADER = "X-Workbench-Identity"

# Wire name of each TEE we verify -> the ``tee`` of VerifiedEvidence it must produce.
SUPPORTED_TEES: dict[str, str] = {
    "sgx": "sgx",
    "tdx": "tdx",
    "snp": "snp",
    "az-snp-vtpm": "az-snp-vtpm",
    "az-tdx-vtpm": "az-tdx-vtpm",
    "simulated": "simulated",
}
# Wire names whose quote/report data carries Trustee's runtime-data hash when a Trustee
# attester made them (docs/kbs.md, "Azure confidential VMs").
TRUSTEE_BINDING_TEES = frozenset({"az-snp-vtpm", "az-tdx-vtpm"})
# Names Trustee knows that this broker cannot verify (refused with that reason).
TRUSTEE_ONLY_TEES = frozenset({
    "nvidia", "sev", "cca", "csv", "se", "hygondcu", "tpm", "sample", "sampledevice",
})
# kbs-types 0.12 and earlier spelt the Azure TEEs in lower case without dashes; the name the
# broker knows them by is given back in the refusal.
RENAMED_TEES: dict[str, str] = {"azsnpvtpm": "az-snp-vtpm", "aztdxvtpm": "az-tdx-vtpm"}


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON body as sent: Trustee's field names, absent optional members left out."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


class AuthRequest(_Wire):
    version: str = Field(description="protocol version spoken by the client (0.4.0)")
    tee: str = Field(description="TEE type: sgx, tdx, snp, az-snp-vtpm, az-tdx-vtpm or "
                                 "simulated")
    extra_params: Any = Field(
        default="", alias="extra-params",
        description='optional; {"resources": ["repo/type/tag", ...]} names what the '
                    "session will ask for, so the attest token is appraised against those "
                    "resources' policies",
    )


class Challenge(_Wire):
    nonce: str
    extra_params: Any = Field(default="", alias="extra-params")


class RuntimeData(_Wire):
    nonce: str = Field(description="the nonce of the challenge, unchanged")
    tee_pubkey: dict[str, Any] = Field(
        alias="tee-pubkey",
        description="JWK the resources are encrypted to: EC P-256/384/521 with alg "
                    "ECDH-ES+A256KW, or RSA (>= 2048 bits) with alg RSA-OAEP-256",
    )
    transport_key: str = Field(
        default="", alias="transport-key", pattern=r"^([0-9a-f]{2}){0,64}$",
        description="extension: hex of the kernel's channel key (its CurveZMQ public key, "
                    "32 bytes), bound into the report data with the nonce and tee-pubkey; "
                    "the token states it as workbench.transport-key",
    )
    session_key: str = Field(
        default="", alias="session-key", pattern=r"^(04([0-9a-f]{2}){64})?$",
        description="extension: hex of the sealed-session public key (uncompressed P-256 "
                    "point, 65 bytes) of the frontend the kernel is locked to; when given, "
                    "the report data binds it too (version 2) and the token states it as "
                    "workbench.session-key",
    )
    session_certificate: dict[str, Any] | None = Field(
        default=None, alias="session-certificate",
        description="extension: the analyst's certificate of the sealed session (the session "
                    "keys and the kernel key, signed by the analyst's registered key; "
                    "docs/sealed-sessions.md); the report data then binds its digest too, "
                    "and the token states the analyst as workbench.analyst",
    )


class AttestRequest(_Wire):
    runtime_data: RuntimeData = Field(alias="runtime-data")
    tee_evidence: Any = Field(
        alias="tee-evidence",
        description='{"evidence": base64 of the raw quote/report, "certs": [base64 DER]} '
                    "(also accepted: a bare base64 string, {\"quote\": ...}, or Trustee's "
                    "composite {\"primary_evidence\": ...})",
    )
    init_data: Any | None = Field(default=None, alias="init-data")


class AttestResponse(_Wire):
    token: str = Field(description="EAR attestation result (JWT, ES256, broker key)")


class JweResponse(_Wire):
    protected: str
    encrypted_key: str
    iv: str
    ciphertext: str
    tag: str


class PendingApproval(_Wire):
    status: str = "pending-approval"
    request_id: str = Field(alias="request-id")
    resource: str
    deadline: str
    retry_after_s: int = Field(alias="retry-after-s")


class FailedRule(_Wire):
    name: str
    expected: Any = None
    actual: Any = None
    reason: str = ""


class ErrorInformation(_Wire):
    type: str
    detail: str
    failed_rules: list[FailedRule] | None = Field(default=None, alias="failed-rules")
    request_id: str | None = Field(default=None, alias="request-id")


class Health(_Wire):
    status: str
    version: str
    protocol: str
