"""The kernel's side of a worker joining: judge the broker's token, then issue a certificate.

A worker sends ``{"name", "csr", "token"}``: a CSR signed with its ephemeral key and the EAR
token the data owner's broker gave it for that key. The kernel issues the worker's TLS
certificate only if the token verifies under the broker's published keys, has not expired,
binds exactly the CSR's key (``tee-pubkey``), and the broker's verdict on every resource the
cluster may read passes. Nothing here is secret (the CSR and the token are public), which is
why the exchange may travel over plain HTTP: what cannot be forged is the broker's signature
and the worker's possession of the key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK

from workbench.attestation.appraise.ear import TokenInvalid, verify_token
from workbench.errors import WorkbenchError
from workbench.protocol.claims import RESOURCES_CLAIM, TEE_PUBKEY_CLAIM
from workbench.scaleout.ca import ClusterCA, CsrInvalid, read_csr

ENROLL_PATH = "/enroll"
FAILED_PATH = "/failed"
# Verdicts under which a worker gets no certificate (the broker would refuse its keys).
REFUSED_STATUSES = frozenset({"contraindicated", "unknown-resource", "none"})
MAX_BODY = 64 * 1024


class EnrollmentRefused(WorkbenchError):
    """A worker that does not get a certificate, and why."""


@dataclass(frozen=True)
class Enrolled:
    name: str
    certificate: str
    token_status: str
    attest_ms: float


def _same_key(jwk: dict[str, Any], key: ec.EllipticCurvePublicKey) -> bool:
    try:
        bound = JWK(**jwk).get_op_key("verify")
    except Exception:
        return False
    return (isinstance(bound, ec.EllipticCurvePublicKey)
            and bound.public_numbers() == key.public_numbers())


def judge(request: dict[str, Any], *, broker_keys: Sequence[JWK],
          resources: Sequence[str]) -> tuple[str, ec.EllipticCurvePublicKey, str]:
    """(worker name, its public key, the token's status), or EnrollmentRefused saying why."""
    name = request.get("name")
    if not isinstance(name, str) or not name or len(name) > 128:
        raise EnrollmentRefused("the enrollment names no worker")
    try:
        csr = read_csr(str(request.get("csr", "")))
    except CsrInvalid as err:
        raise EnrollmentRefused(f"worker {name}: {err}") from None
    problems = []
    for key in broker_keys:
        try:
            claims = verify_token(str(request.get("token", "")), key)
            break
        except (TokenInvalid, ValueError) as err:
            problems.append(str(err))
    else:
        raise EnrollmentRefused(f"worker {name}: its attestation token does not verify under "
                                f"the broker's keys ({'; '.join(problems) or 'no key'})")
    public = csr.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    if not _same_key(claims.get(TEE_PUBKEY_CLAIM) or {}, public):
        raise EnrollmentRefused(f"worker {name}: the token binds another key than the one in "
                                "its certificate request")
    verdicts = claims.get(RESOURCES_CLAIM) or {}
    # Resources refused for the same reason are named together: one clause per cause.
    refused: dict[str, list[str]] = {}
    for resource in resources:
        verdict = verdicts.get(resource) or {}
        status = verdict.get("status", "none")
        if status in REFUSED_STATUSES:
            rules = ", ".join(_rule_name(r) for r in verdict.get("failed_rules") or [])
            refused.setdefault(status + (f" (failed: {rules})" if rules else ""),
                               []).append(resource)
    if refused:
        raise EnrollmentRefused(f"worker {name} refused: the broker's verdict on " + "; ".join(
            f"{', '.join(names)} is {cause}" for cause, names in refused.items()))
    return name, public, claims.submod().status.value


def _rule_name(rule: Any) -> str:
    return str(rule.get("name")) if isinstance(rule, dict) else str(rule)


class Enrollment:
    """What the kernel keeps of workers joining: the certificates issued, the refusals."""

    def __init__(self, ca: ClusterCA, broker_keys: Callable[[], Sequence[JWK]],
                 resources: Sequence[str]) -> None:
        self._ca = ca
        self._broker_keys = broker_keys
        self.resources = tuple(resources)
        self._changed = threading.Condition()
        self.enrolled: dict[str, Enrolled] = {}
        self.refused: dict[str, str] = {}

    def enroll(self, request: dict[str, Any]) -> dict[str, str]:
        try:
            name, public, status = judge(request, broker_keys=self._broker_keys(),
                                         resources=self.resources)
        except EnrollmentRefused as err:
            self._refuse(str(request.get("name") or "?"), str(err))
            raise
        certificate = self._ca.issue(public, name, "worker")
        attest_ms = float(request.get("attest_ms") or 0.0)
        with self._changed:
            self.enrolled[name] = Enrolled(name, certificate, status, attest_ms)
            self._changed.notify_all()
        return {"certificate": certificate, "ca": self._ca.pem}

    def failed(self, request: dict[str, Any]) -> None:
        """A worker that could not attest at all (e.g. the broker is unreachable)."""
        self._refuse(str(request.get("name") or "?"), str(request.get("reason") or "")[:2000])

    def _refuse(self, name: str, reason: str) -> None:
        with self._changed:
            self.refused[name] = reason
            self._changed.notify_all()

    def wait(self, names: Sequence[str], timeout_s: float,
             alive: Callable[[], dict[str, int | None]]) -> None:
        """Block (no polling of the workers) until every worker in ``names`` enrolled, was
        refused or exited; then raise once for all that failed. ``alive`` gives each
        worker's exit code, checked when woken or each second."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                failed = {n: self.refused[n] for n in names if n in self.refused}
                codes = alive()
                exited = {n: f"exited with status {codes[n]} before enrolling" for n in names
                          if codes.get(n) is not None and n not in self.enrolled
                          and n not in failed}
                if all(n in self.enrolled or n in failed or n in exited for n in names):
                    if failed or exited:
                        raise EnrollmentRefused(_one_message({**failed, **exited}))
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.enrolled]
                    raise EnrollmentRefused(f"worker(s) {', '.join(missing)} did not enroll "
                                            f"within {timeout_s:g} s")
                self._changed.wait(min(left, 1.0))


def _one_message(failed: dict[str, str]) -> str:
    """The same cause from every worker is said once, naming the workers."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in failed.items():
        by_reason.setdefault(reason, []).append(name)
    return "; ".join(f"{reason} (worker {', '.join(sorted(names))})"
                     for reason, names in by_reason.items())


class _Handler(BaseHTTPRequestHandler):
    enrollment: Enrollment

    def log_message(self, *_args: Any) -> None:  # the kernel's output is the analyst's
        return

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, {"detail": "enrollment request too large"})
            return
        try:
            request = json.loads(self.rfile.read(length))
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            self._answer(400, {"detail": "enrollment request is not a JSON object"})
            return
        route = ROUTES.get(self.path)
        if route is None:
            self._answer(404, {"detail": f"no route {self.path}"})
            return
        route(self, request)


def _enroll(handler: _Handler, request: dict[str, Any]) -> None:
    try:
        handler._answer(200, handler.enrollment.enroll(request))
    except EnrollmentRefused as err:
        handler._answer(403, {"detail": str(err)})


def _failed(handler: _Handler, request: dict[str, Any]) -> None:
    handler.enrollment.failed(request)
    handler._answer(200, {})


ROUTES: dict[str, Callable[[_Handler, dict[str, Any]], None]] = {
    ENROLL_PATH: _enroll, FAILED_PATH: _failed}


class EnrollmentServer:
    """The enrollment endpoint on ``host`` (a free port), served on a daemon thread."""

    def __init__(self, enrollment: Enrollment, host: str = "127.0.0.1") -> None:
        handler = type("EnrollmentHandler", (_Handler,), {"enrollment": enrollment})
        self._server = ThreadingHTTPServer((host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="workbench-cluster-enroll", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
