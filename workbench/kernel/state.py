"""The kernel's confidential session: its ephemeral key, its broker session, released keys.

One :class:`KernelState` per process (``current_state()``). It creates the ephemeral EC
key pair when it starts and keeps it, and every key the broker releases, in memory only.
A release goes: attested session naming the resource -> the policy verdict in the token ->
the analyst's confirmation (frontend, or a non-interactive approval) -> the resource
request, which the broker audits with how the analyst confirmed.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwcrypto.jwk import JWK

from workbench.attestation.appraise.ear import EarClaims
from workbench.attestation.tee import EvidenceProvider, certified_evidence, get_provider
from workbench.brokerclient import (
    AnalystApproval,
    AttestationFailed,
    BrokerClient,
    BrokerError,
    BrokerSession,
    ClientProblem,
    PendingRelease,
)
from workbench.brokerclient.identity import IdentityToken, identity_from_env
from workbench.errors import WorkbenchError
from workbench.inference.progress import text_only
from workbench.kernel.catalog import Catalog
from workbench.kernel.config import KernelConfig, config_path, load_kernel_config
from workbench.kernel.errors import (
    ApprovalDeclined,
    ApprovalRequired,
    ApprovalTimeout,
    BrokerUnreachable,
    ReleaseRefused,
    describe_rules,
)
from workbench.kernel.frontend import Frontend, NoFrontend
from workbench.kernel.lock import KernelLock
from workbench.kernel.report import AttestationReport
from workbench.kernel.runtimes import Runtime, resolve_runtime
from workbench.protocol.claims import tee_pubkey_jwk
from workbench.protocol.errors import ErrorKind
from workbench.sealed import SealedChannel
from workbench.sealed.certificate import token_hash

# Verdicts in the token for which asking the analyst is pointless: the broker will refuse.
REFUSED_VERDICTS = frozenset({"contraindicated", "unknown-resource"})
ENV_AUTO_APPROVE = "WORKBENCH_AUTO_APPROVE"


class RecordingProvider:
    """Passes evidence through, remembering the last piece and when its nonce arrived."""

    def __init__(self, inner: EvidenceProvider) -> None:
        self._inner = inner
        self.name = inner.name
        self.tee = inner.tee
        self.last_evidence = b""
        self.last_certificates: tuple[bytes, ...] = ()
        self.last_requested_at = datetime.now(UTC)

    def evidence(self, report_data: bytes) -> bytes:
        return self.certified_evidence(report_data)[0]

    def certified_evidence(self, report_data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
        # Called right after the broker's challenge arrives: this is the nonce's arrival.
        self.last_requested_at = datetime.now(UTC)
        self.last_evidence, self.last_certificates = certified_evidence(self._inner,
                                                                        report_data)
        return self.last_evidence, self.last_certificates


@dataclass(frozen=True)
class Released:
    resource: str
    time: str

    def to_json(self) -> dict[str, str]:
        return {"resource": self.resource, "time": self.time}


def _print_pending(outcome: PendingRelease) -> None:
    print(f"waiting for the data owner to approve the release of {outcome.resource} "
          f"(request {outcome.request_id}, deadline {outcome.deadline})",
          file=sys.stdout, flush=True)


def _reachability(err: BrokerError, url: str) -> BrokerUnreachable:
    cause = str(err).split(f"{url} ", 1)[-1]
    return BrokerUnreachable(
        f"cannot reach the key broker at {url} {cause}: check that the data owner's broker "
        f"is running there (`workbench kbs serve`) and that broker_url in {config_path()} "
        "or WORKBENCH_KBS_URL names it")


class KernelState:
    def __init__(self, config: KernelConfig, runtime: Runtime, *,
                 provider: EvidenceProvider | None = None,
                 frontend: Frontend | None = None, transport_key: bytes = b"",
                 identity: IdentityToken | None = None) -> None:
        self.config = config
        self.runtime = runtime
        # The public CurveZMQ key the kernel's channels are served with (empty outside a
        # kernel): bound into every attestation so clients can check whom they talk to.
        self.transport_key = bytes(transport_key)
        # The analyst's identity token (from the hub), for the broker's user rules.
        self._identity = identity
        self.frontend: Frontend = frontend or NoFrontend()
        self._provider = RecordingProvider(provider or get_provider(runtime.provider))
        # The simulated TEE measures the installed code: do it at start, as a TEE measures
        # at load, so later edits to the files on disk do not change what this kernel is.
        measure = getattr(self._provider._inner, "measurement", None)
        if callable(measure):
            measure()
        # The ephemeral key: created once, in memory, never exported.
        self._key = JWK.generate(kty="EC", crv="P-256")
        # The sealed session a frontend locks this kernel to, over the same key.
        self.seal = KernelLock(load_pem_private_key(
            self._key.export_to_pem(private_key=True, password=None), None))  # type: ignore[arg-type]
        self._lock = threading.RLock()
        self.released: list[Released] = []
        self.report: AttestationReport | None = None
        # Sessions, retries and released keys; this class adds the analyst and the frontend.
        self._broker = BrokerClient(
            config.broker_url, provider=self._provider, key=self._key,
            transport_key=self.transport_key, identity=identity,
            timeout_s=config.broker_timeout_s, wait_s=config.owner_approval_wait_s,
            verify=True, name_each=True, also_name=self._catalog_resources,
            on_pending=_print_pending, on_attested=self._attested)

    # -- identity ---------------------------------------------------------------------------

    @property
    def tee_pubkey(self) -> dict[str, Any]:
        return tee_pubkey_jwk(self._key.export_public(as_dict=True))

    @property
    def identity_source(self) -> str | None:
        """Where the identity token came from (never the token itself)."""
        return self._identity.source if self._identity is not None else None

    def status(self) -> dict[str, Any]:
        """The comm's ``status`` message fields."""
        return {
            "runtime": self.runtime.name,
            "tee": self._provider.tee,
            "simulated": not self.runtime.hardware,
            "broker": self.config.broker_url,
            "tee_pubkey": self.tee_pubkey,
            "transport_key": self.transport_key.hex(),
            "sealed": self.seal.fingerprint,
            "report": self.report.evidence_message() if self.report else None,
            "released": [r.to_json() for r in self.released],
        }

    def catalog(self) -> Catalog:
        return Catalog.load(self.config.data_path)

    def _catalog_resources(self) -> list[str]:
        try:
            return self.catalog().resources()
        except WorkbenchError:
            return []

    # -- the sealed session -------------------------------------------------------------------

    def lock_to(self, session_key_hex: Any, certificate: Any = None) -> SealedChannel:
        """Lock to a frontend's session key: from now on only it drives this kernel, and
        every later attestation binds its key and, when an analyst certified the session,
        the certificate (LockRefused says why not)."""
        channel = self.seal.lock(session_key_hex, certificate)
        text_only()
        self._broker.session_key = self.seal.session_point
        if self.seal.certificate is not None:
            self._broker.session_certificate = self.seal.certificate.to_json()
        self.forget()
        return channel

    def locked_message(self) -> dict[str, Any]:
        """The ``locked`` comm message: what the frontend verifies before it trusts."""
        with self._lock:
            report = self.report
        return {"session": self.seal.fingerprint, "tee_pubkey": self.tee_pubkey,
                "transport_key": self.transport_key.hex(), "broker": self.config.broker_url,
                "broker_jwk": self._broker.verifying_jwk(),
                "evidence": report.evidence_message() if report else None}

    # -- attestation ------------------------------------------------------------------------

    def attest(self, resources: Sequence[str] | None = None) -> AttestationReport:
        """A fresh session: nonce, evidence, the broker's verified token, a report."""
        named = resources if resources is not None else self._catalog_resources()
        try:
            self._broker.attest(named)
        except AttestationFailed as err:
            raise self._attestation_failure(err) from None
        assert self.report is not None
        return self.report

    def _attested(self, session: BrokerSession, claims: EarClaims | None) -> None:
        assert claims is not None  # the kernel's client verifies every token
        report = AttestationReport(
            runtime=self.runtime.name, broker=self.config.broker_url,
            token=session.token or "", claims=claims, evidence=self._provider.last_evidence,
            certificates=self._provider.last_certificates,
            nonce=session.nonce or "", nonce_issued_at=self._provider.last_requested_at,
            tee_pubkey=session.tee_pubkey, transport_key=self.transport_key,
            session_key=session.session_key,
            session_certificate=session.session_certificate)
        with self._lock:
            self.report = report
        self.frontend.send("evidence", report.evidence_message())
        self.frontend.send("status", self.status())

    def _attestation_failure(self, err: AttestationFailed) -> WorkbenchError:
        if err.kind == ClientProblem.UNREACHABLE:
            return _reachability(err, self.config.broker_url)
        return WorkbenchError(f"attestation failed: {err}")

    def _session_for(self, resource: str) -> tuple[BrokerSession, AttestationReport]:
        try:
            session = self._broker.session_for(resource)
        except AttestationFailed as err:
            raise self._attestation_failure(err) from None
        with self._lock:
            assert self.report is not None
            return session, self.report

    # -- releases ------------------------------------------------------------------------------

    def release(self, resource: str, *, kind: str, name: str, approve: bool = False) -> bytes:
        """The key material of ``resource``, released to this kernel (memory only)."""
        kept = self._broker.cached(resource)
        if kept is not None:
            return kept
        session, report = self._session_for(resource)
        verdict = report.verdict_for(resource) or {}
        if verdict.get("status") in REFUSED_VERDICTS:
            # The token already says no; the broker is asked anyway, so its refusal (with
            # the rules' expected and actual values) is the reason shown, and is audited.
            key = self._fetch(session, resource, None)
            # Only reached if the policy changed since the token: confirm before keeping it.
            request_id = self._confirm(resource, kind, name, verdict, report, approve)[1]
        else:
            analyst, request_id = self._confirm(resource, kind, name, verdict, report, approve)
            key = self._fetch(session, resource, analyst)
        self._broker.keep(resource, key)
        with self._lock:
            entry = Released(resource, datetime.now(UTC).isoformat(timespec="seconds"))
            self.released.append(entry)
        self.frontend.send("released", {"request_id": request_id, "resource": resource,
                                        "time": entry.time})
        self.frontend.send("status", self.status())
        return key

    def _confirm(self, resource: str, kind: str, name: str, verdict: dict[str, Any],
                 report: AttestationReport, approve: bool
                 ) -> tuple[AnalystApproval, str | None]:
        """How the analyst approved, and the frontend request id when one was asked."""
        sealed = self.seal.fingerprint
        # A certified session's approval is its signature: only the frontend can give it.
        certified = self.seal.certificate is not None
        if approve and not certified:
            # In a locked kernel this code arrived sealed: the analyst's own confirmation.
            mode = ("sealed", sealed) if sealed else ("non-interactive", "approve=True")
            return AnalystApproval(*mode), None
        # The environment is the operator's: under a lock it approves nothing.
        if self.config.auto_approve and not sealed:
            return AnalystApproval("non-interactive", f"{ENV_AUTO_APPROVE}=1"), None
        if not self.frontend.listening:
            raise ApprovalRequired(
                f"releasing {resource} ({kind} '{name}') needs the analyst's confirmation, and no "
                "frontend is listening to ask (nbclient, papermill and consoles cannot): pass "
                f"approve=True or set {ENV_AUTO_APPROVE}=1 to approve without asking; the "
                "broker's audit log records it as a non-interactive approval")
        request_id = str(uuid.uuid4())
        answer = self.frontend.ask(request_id, {
            "request_id": request_id, "resource": resource, "dataset": name, "kind": kind,
            "broker": self.config.broker_url,
            "summary": {"status": verdict.get("status", report.status),
                        "policy_id": verdict.get("policy_id"),
                        "failed_rules": list(verdict.get("failed_rules") or [])},
            "token": report.token,
            # What a certified session signs besides the request and the resource.
            "kernel_key": self.seal.kernel_key, "token_sha256": token_hash(report.token),
        }, self.config.approval_timeout_s)
        if answer is None:
            self._refused(resource, request_id, "no answer from the analyst in time", [])
            raise ApprovalTimeout(
                f"no answer to release request {request_id} for {resource} within "
                f"{self.config.approval_timeout_s:g} s; nothing was released (answer the "
                "prompt in JupyterLab, or pass approve=True)")
        if not answer.approved:
            self._refused(resource, request_id, "declined by the analyst", [])
            who = f" by {answer.by}" if answer.by else ""
            raise ApprovalDeclined(f"the release of {resource} ({kind} '{name}') was declined{who} "
                                   f"(request {request_id}); nothing was released")
        if sealed:
            # Only the session could seal the answer; who it is, the broker records itself.
            return AnalystApproval("sealed", sealed, answer.signature, request_id), request_id
        # What the frontend says about who answered is not evidence: it is not sent.
        return AnalystApproval("interactive", "frontend"), request_id

    def _fetch(self, session: BrokerSession, resource: str,
               analyst: AnalystApproval | None) -> bytes:
        try:
            return self._broker.fetch(resource, analyst=analyst, session=session)
        except AttestationFailed as err:
            raise self._attestation_failure(err) from None
        except BrokerError as err:
            raise self._refusal(err, resource) from None

    def _refusal(self, err: BrokerError, resource: str) -> WorkbenchError:
        if err.kind == ClientProblem.UNREACHABLE:
            return _reachability(err, self.config.broker_url)
        rules = list(err.failed_rules or [])
        reason = str(err).removeprefix(f"key broker refused {resource}: ")
        self._refused(resource, err.request_id, reason, rules)
        if err.kind in (ErrorKind.APPROVAL_EXPIRED, ClientProblem.STILL_PENDING):
            return ApprovalTimeout(f"the data owner's approval for {resource} did not come: "
                                   f"{reason}")
        if rules:
            return ReleaseRefused(f"the key broker refused to release {resource} to this "
                                  f"kernel; failed rule(s): {describe_rules(rules)}",
                                  resource=resource, failed_rules=rules)
        return ReleaseRefused(f"the key broker refused to release {resource}: {reason}",
                              resource=resource)

    def _refused(self, resource: str, request_id: str | None, reason: str,
                 rules: list[dict[str, Any]]) -> None:
        self.frontend.send("refused", {"request_id": request_id, "resource": resource,
                                       "reason": reason, "failed_rules": rules})

    def forget(self) -> None:
        """Drop released keys and the broker session; the next use attests again."""
        self._broker.forget()
        with self._lock:
            self.released.clear()
            self.report = None
        self.frontend.send("status", self.status())


_state: KernelState | None = None
_state_lock = threading.Lock()


def start_state(frontend: Frontend | None = None, *,
                config: KernelConfig | None = None, transport_key: bytes = b"") -> KernelState:
    """Create the process's state (the kernel does this at start, before any cell)."""
    global _state
    with _state_lock:
        config = config or load_kernel_config()
        runtime = resolve_runtime(config.runtime, allow_simulation=config.allow_simulation)
        _state = KernelState(config, runtime, frontend=frontend, transport_key=transport_key,
                             identity=identity_from_env())
        return _state


def current_state() -> KernelState:
    """The state of this process, created on first use outside a kernel (plain Python)."""
    if _state is None:
        return start_state()
    return _state
