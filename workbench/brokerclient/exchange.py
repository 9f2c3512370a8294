"""The attested client side of the broker protocol (RCAR), as the kernel runs it.

One :class:`BrokerSession` is one ephemeral key pair (EC P-256, kept in memory only), one
challenge, one piece of evidence binding the nonce and the public key, and then any number
of resource requests answered as JWE to that key. This module talks to the broker only over
HTTP: it never imports the broker's code.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from jwcrypto.common import JWException
from jwcrypto.jwe import JWE
from jwcrypto.jwk import JWK

from workbench.attestation.appraise.ear import EarClaims, TokenInvalid, verify_token
from workbench.attestation.tee import EvidenceProvider, certified_evidence, get_provider
from workbench.attestation.tee.binding import report_data_for
from workbench.brokerclient.identity import IdentityToken
from workbench.errors import WorkbenchError
from workbench.protocol.claims import SESSION_KEY_CLAIM, TRANSPORT_KEY_CLAIM, tee_pubkey_jwk
from workbench.protocol.errors import kind_of
from workbench.protocol.jwks import JwksProblem, fetch_jwks, jwks_url
from workbench.protocol.rcar import (
    ATTEST_PATH,
    AUTH_PATH,
    PROTOCOL_VERSION,
    RESOURCE_PATH,
    AttestRequest,
    AuthRequest,
    RuntimeData,
)
from workbench.sealed.certificate import SessionCertificate

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_WAIT_S = 900.0


class ClientProblem(StrEnum):
    """Kinds of failure the client finds itself (the broker's own are ``ErrorKind``)."""

    UNREACHABLE = "Unreachable"
    BAD_JWE = "BadJwe"
    STILL_PENDING = "StillPending"


class BrokerError(WorkbenchError):
    """The broker refused, or could not be reached; ``kind`` names the problem type."""

    def __init__(self, message: str, *, kind: str = "", status: int | None = None,
                 failed_rules: list[dict[str, Any]] | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.failed_rules = failed_rules or []
        self.request_id = request_id


@dataclass(frozen=True)
class AnalystApproval:
    """How the analyst confirmed a release, for the broker's audit log (not a permission).

    ``mode`` is ``interactive`` (answered in the frontend), ``non-interactive``
    (``approve=True`` or ``WORKBENCH_AUTO_APPROVE=1``; ``by`` says which switch) or
    ``sealed`` (``by`` is the session fingerprint; a certified session's approval also
    carries its ``signature`` over the release ``request``).
    """

    mode: str
    by: str = ""
    signature: str = ""
    request: str = ""

    def params(self) -> dict[str, str]:
        signed = {"analyst-approval-signature": self.signature,
                  "analyst-approval-request": self.request} if self.signature else {}
        return {"analyst-approval": self.mode, "analyst-approval-by": self.by, **signed}


@dataclass(frozen=True)
class PendingRelease:
    request_id: str
    resource: str
    deadline: str
    retry_after_s: float


def _problem(response: httpx.Response, what: str) -> BrokerError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    kind = kind_of(body.get("type"))
    detail = body.get("detail") or response.reason_phrase or f"HTTP {response.status_code}"
    return BrokerError(f"key broker refused {what}: {detail}", kind=kind,
                       status=response.status_code, failed_rules=body.get("failed-rules"),
                       request_id=body.get("request-id"))


class BrokerSession:
    """Attest once, then fetch resources; ``close()`` (or ``with``) ends it.

    ``transport_key`` (raw bytes: the kernel's CurveZMQ public key) is bound into the
    evidence with the nonce and the ephemeral key, and sent as ``runtime-data``'s
    ``transport-key`` so the broker can check the binding and put it in the token.
    ``identity`` is sent with every request (``X-Workbench-Identity``) for the broker's
    user and group rules.
    """

    def __init__(self, url: str, *, tee: str = "simulated",
                 provider: EvidenceProvider | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 client: httpx.Client | None = None, key: JWK | None = None,
                 transport_key: bytes = b"", identity: IdentityToken | None = None,
                 session_key: bytes = b"",
                 session_certificate: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        # The analyst's certificate of that session (None: not certified).
        self.session_certificate = session_certificate
        self._provider = provider or get_provider(tee)
        self._own_client = client is None
        self._http = client or httpx.Client(base_url=self.url, timeout=timeout_s)
        self.transport_key = bytes(transport_key)
        # A frontend's sealed-session key (uncompressed P-256 point) the kernel is locked to.
        self.session_key = bytes(session_key)
        self._headers = identity.headers() if identity is not None else {}
        # A caller (the kernel) may keep one ephemeral key across sessions; it stays in memory.
        self._key = key or JWK.generate(kty="EC", crv="P-256")
        self.token: str | None = None
        self.nonce: str | None = None
        # The broker key the token verified under (a frontend pins it, docs/sealed-sessions.md).
        self.verified_by: JWK | None = None

    def __enter__(self) -> BrokerSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_client:
            self._http.close()

    @property
    def tee_pubkey(self) -> dict[str, Any]:
        return tee_pubkey_jwk(self._key.export_public(as_dict=True))

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError as err:
            raise BrokerError(f"cannot reach the key broker at {self.url} ({err})",
                              kind=ClientProblem.UNREACHABLE) from None

    def attest(self, resources: Sequence[str] = ()) -> str:
        """Run auth + attest; name ``resources`` so the token reports their policies."""
        request = AuthRequest(version=PROTOCOL_VERSION, tee=self._provider.tee,
                              extra_params={"resources": list(resources)} if resources else "")
        response = self._send("POST", AUTH_PATH, "the session", json=request.wire())
        if response.status_code != 200:
            raise _problem(response, "the session")
        nonce = response.json()["nonce"]
        pubkey = self.tee_pubkey
        certificate = self.session_certificate
        digest = SessionCertificate.from_json(certificate).digest() if certificate else b""
        evidence, certificates = certified_evidence(
            self._provider,
            report_data_for(nonce, pubkey, self.transport_key, self.session_key, digest))
        tee_evidence: dict[str, Any] = {"evidence": base64.b64encode(evidence).decode()}
        if certificates:
            tee_evidence["certs"] = [base64.b64encode(c).decode() for c in certificates]
        attestation = AttestRequest(
            runtime_data=RuntimeData(nonce=nonce, tee_pubkey=pubkey,
                                     transport_key=self.transport_key.hex(),
                                     session_key=self.session_key.hex(),
                                     session_certificate=certificate),
            tee_evidence=tee_evidence,
        )
        response = self._send("POST", ATTEST_PATH, "the evidence", json=attestation.wire())
        if response.status_code != 200:
            raise _problem(response, "the evidence")
        self.nonce = nonce
        self.token = response.json()["token"]
        return self.token

    def broker_keys(self) -> list[JWK]:
        try:
            return fetch_jwks(jwks_url(self.url), client=self._http, headers=self._headers)
        except JwksProblem as err:
            if err.unreachable:
                raise BrokerError(f"cannot reach the key broker at {self.url} ({err})",
                                  kind=ClientProblem.UNREACHABLE) from None
            raise BrokerError(f"the key broker's keys are unusable: {err}") from None

    def verified_claims(self, keys: Sequence[JWK] | None = None) -> EarClaims:
        """The token's claims, after checking its signature against ``keys`` (default: the
        keys the broker publishes, i.e. trust on first use unless the caller pins them)."""
        if self.token is None:
            raise BrokerError("no attestation token yet: call attest() first")
        problems = []
        for key in keys if keys is not None else self.broker_keys():
            try:
                claims = verify_token(self.token, key)
            except (TokenInvalid, ValueError) as err:
                problems.append(str(err))
                continue
            if claims.nonce != self.nonce:
                raise BrokerError("attestation token is not for this session (eat_nonce)")
            if claims.get(TRANSPORT_KEY_CLAIM, "") != self.transport_key.hex():
                raise BrokerError("attestation token binds another transport key than this "
                                  f"session's ({TRANSPORT_KEY_CLAIM})")
            if claims.get(SESSION_KEY_CLAIM, "") != self.session_key.hex():
                raise BrokerError("attestation token binds another sealed-session key than "
                                  f"this session's ({SESSION_KEY_CLAIM})")
            self.verified_by = key
            return claims
        raise BrokerError(f"attestation token does not verify: {'; '.join(problems) or 'no key'}")

    def fetch(self, resource: str, *, analyst: AnalystApproval | None = None
              ) -> bytes | PendingRelease:
        """One resource request: the plaintext, or the pending approval to wait for."""
        params = analyst.params() if analyst is not None else None
        response = self._send("GET", f"{RESOURCE_PATH}/{resource}", resource, params=params)
        if response.status_code == 202:
            body = response.json()
            return PendingRelease(body["request-id"], body["resource"], body["deadline"],
                                  float(body.get("retry-after-s", 1)))
        if response.status_code != 200:
            raise _problem(response, resource)
        return self.decrypt(response.json())

    def decrypt(self, flattened: dict[str, Any]) -> bytes:
        token = JWE()
        try:
            token.deserialize(json.dumps(flattened), key=self._key)
        except (JWException, ValueError, KeyError) as err:
            raise BrokerError(f"released resource does not decrypt with this session's key "
                              f"({err})", kind=ClientProblem.BAD_JWE) from None
        return token.payload

    def get_resource(self, resource: str, *, wait_s: float = DEFAULT_WAIT_S,
                     on_pending: Callable[[PendingRelease], None] | None = None,
                     analyst: AnalystApproval | None = None) -> bytes:
        """Fetch ``resource``, waiting (polling) up to ``wait_s`` for a human approval."""
        give_up = time.monotonic() + wait_s
        announced = False
        while True:
            outcome = self.fetch(resource, analyst=analyst)
            if not isinstance(outcome, PendingRelease):
                return outcome
            if on_pending is not None and not announced:
                on_pending(outcome)
                announced = True
            if time.monotonic() + outcome.retry_after_s > give_up:
                raise BrokerError(f"{resource}: still waiting for approval (request "
                                  f"{outcome.request_id}) after {wait_s:g} s",
                                  kind=ClientProblem.STILL_PENDING, request_id=outcome.request_id)
            time.sleep(outcome.retry_after_s)

