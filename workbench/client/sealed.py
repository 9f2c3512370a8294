"""A Python frontend of a sealed session: lock a kernel, run code, read what it says.

The analyst's side of docs/sealed-sessions.md for scripts, ``workbench run`` and ``demo
--headless``: the session key lives in this process only; the kernel's token is verified
here, under the broker key this client pinned, before anything sealed is sent; every
request leaves sealed and every output is opened here, in the order the kernel sent it.
Whoever relays the messages (a Jupyter server, a gateway) sees ciphertext; and once the
kernel is locked, what does not come sealed from this session (an output, a comm message, a
reply) is refused and recorded, never shown: the relay could have written it.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto.jwk import JWK
from nbformat.v4 import output_from_msg

from workbench.attestation.appraise.ear import EarClaims, TokenInvalid, verify_token
from workbench.client.certifier import certifier_problem
from workbench.client.pins import Pinned, pin
from workbench.errors import WorkbenchError
from workbench.protocol.claims import SESSION_KEY_CLAIM, TEE_PUBKEY_CLAIM, TRANSPORT_KEY_CLAIM
from workbench.protocol.comm import COMM_TARGET, COMM_VERSION
from workbench.sealed import Direction, Lane, SealedChannel, SealRefused
from workbench.sealed.certificate import (
    SessionCertificate,
    approval_message,
    certify,
    sign,
    thumbprint,
    token_hash,
)
from workbench.sealed.channel import public_point
from workbench.sealed.keys import key_from_jwk
from workbench.sealed.messages import COMM_TYPES, open_incoming, open_sealed, seal_request

DEFAULT_TIMEOUT_S = 300.0


class SealedSessionError(WorkbenchError):
    """The sealed session could not be made or kept; the message says what and why."""


class KernelNotLocked(SealedSessionError):
    """The kernel answering is not locked to this session (restarted, or replaced)."""


@dataclass(frozen=True)
class Lock:
    """What the frontend verified when it locked the kernel."""

    session: str
    broker: str
    broker_key: Pinned
    claims: EarClaims
    evidence: dict[str, Any]


@dataclass
class CellRun:
    """One sealed execute request: its outputs (nbformat dicts) and its reply, opened."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    # Messages refused while this ran (unsealed, or sealed but not opening): whatever they
    # said is not in ``outputs`` or ``reply``, and the run is not to be trusted as complete.
    refused: list[SealRefused] = field(default_factory=list)
    # Sealed outputs that never arrived (an IOPub gap): ``outputs`` may lack some.
    dropped: int = 0

    @property
    def status(self) -> str:
        """The sealed reply's status, or ``refused`` when anything was refused."""
        if self.refused:
            return "refused"
        return str(self.reply.get("status", "?"))

    @property
    def violation(self) -> str | None:
        """Why this run is refused (the first refusal), or None."""
        if not self.refused:
            return None
        more = f" (and {len(self.refused) - 1} more)" if len(self.refused) > 1 else ""
        return f"{self.refused[0].kind}: {self.refused[0]}{more}"

    @property
    def error(self) -> dict[str, Any] | None:
        return next((o for o in self.outputs if o.get("output_type") == "error"), None)

    def text(self, name: str = "stdout") -> str:
        return "".join(o.get("text", "") for o in self.outputs
                       if o.get("output_type") == "stream" and o.get("name") == name)

    def data(self, mime: str) -> Any:
        for output in self.outputs:
            if mime in (output.get("data") or {}):
                return output["data"][mime]
        return None


def _output(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return output_from_msg({"msg_type": msg_type, "header": {"msg_type": msg_type},
                            "content": content})


def _apply(outputs: list[dict[str, Any]], msg_type: str, content: dict[str, Any],
           pending_clear: list[bool]) -> None:
    """Outputs as a notebook keeps them: clear_output and display updates applied."""
    if msg_type == "clear_output":
        if content.get("wait"):
            pending_clear[0] = True
        else:
            outputs.clear()
        return
    if msg_type == "update_display_data":
        display_id = (content.get("transient") or {}).get("display_id")
        for output in outputs:
            if display_id and output.get("_display_id") == display_id:
                output["data"], output["metadata"] = content.get("data", {}), \
                    content.get("metadata", {})
        return
    if pending_clear[0]:
        outputs.clear()
        pending_clear[0] = False
    output = _output(msg_type, content)
    display_id = (content.get("transient") or {}).get("display_id")
    if display_id:
        output["_display_id"] = display_id
    outputs.append(output)


class SealedKernel:
    """Drive one kernel through a sealed session (``lock()`` first).

    ``client``: a started jupyter_client blocking client of the kernel. ``approve``: how
    to answer the kernel's release requests (True/False, or a function of the request).
    ``broker_fingerprint``: the fingerprint the data owner published; without it the
    broker key is pinned on first use in ``pins`` (default ``known_brokers.json``).
    """

    def __init__(self, client: Any, *, approve: bool | Callable[[dict[str, Any]], bool] = False,
                 broker_fingerprint: str | None = None, pins: Path | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 analyst_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.client = client
        self._approve = approve
        self._expected = broker_fingerprint
        self._pins = pins
        self.timeout_s = timeout_s
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.session_key = public_point(self._key.public_key())
        # With the analyst's long-term key, the session is certified and its approvals
        # signed by a key of its own (docs/sealed-sessions.md, "Analysts").
        self._analyst = analyst_key
        self._signing = ec.generate_private_key(ec.SECP256R1())
        self._certificate: SessionCertificate | None = None
        self._kernel_jwk: dict[str, Any] = {}
        self.channel: SealedChannel | None = None
        self.comm_id = uuid.uuid4().hex
        self.lock_info: Lock | None = None
        self.events: list[dict[str, Any]] = []
        self.refused: list[SealRefused] = []
        # Set when the kernel answering is no longer locked to this session: nothing more
        # is sent to it (a new lock is a new SealedKernel).
        self.lost: str | None = None

    @property
    def dropped(self) -> int:
        """Sealed outputs the kernel sent that never arrived (IOPub gaps), this session."""
        return self.channel.dropped[Lane.IOPUB] if self.channel is not None else 0

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg = self.client.session.msg(msg_type, content)
        self.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def _sealed(self, msg_type: str, content: dict[str, Any]) -> str:
        """Seal and send a comm message or request standing for ``content``."""
        return self._send(msg_type, seal_request(self._locked(), msg_type, content))

    def _locked(self) -> SealedChannel:
        """The channel, once the lock is verified: a kernel whose token did not verify is
        sent nothing sealed, even by a caller who caught the refusal."""
        if self.lost is not None:
            raise KernelNotLocked(self.lost)
        if self.channel is None or self.lock_info is None:
            raise SealedSessionError("the kernel is not locked to this session (or its lock "
                                     "was refused): call lock() first")
        return self.channel

    def _next_iopub(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SealedSessionError(f"no answer from the kernel within {self.timeout_s:g} s")
        try:
            return dict(self.client.get_iopub_msg(timeout=left))
        except queue.Empty:
            raise SealedSessionError(f"no answer from the kernel within "
                                     f"{self.timeout_s:g} s") from None

    def _open(self, msg: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        """What a message from the kernel says, and whether it came sealed (opened in
        arrival order; one that does not open is recorded in ``refused``).

        Once the lock is verified, the kernel seals everything it says but status and the
        emptied echo of the code: an output, comm message or reply in the clear is refused
        too. Before that (the lock's own exchange) a plain message is passed on as such."""
        msg_type, content = msg["msg_type"], msg["content"]
        if self.channel is None:
            return msg_type, content, False
        opener = open_sealed if self.lock_info is not None else open_incoming
        try:
            opened = opener(self.channel, msg_type, content)
        except SealRefused as err:
            if err.kind == "unsealed" and msg_type in COMM_TYPES \
                    and content.get("comm_id") != self.comm_id:
                # A locked kernel answers another frontend's lock in the clear, on that
                # frontend's comm: not used here, and no sign of this session's relay.
                return "ignored", {}, False
            self.refused.append(err)
            return "refused", {"reason": str(err), "kind": err.kind}, False
        return (*opened, True) if opened is not None else (msg_type, content, False)

    def _on_comm(self, data: dict[str, Any]) -> None:
        self.events.append(data)
        if data.get("type") == "release-request" and self.lock_info is not None:
            decide = self._approve
            approved = decide(data) if callable(decide) else bool(decide)
            answer = {"type": "approval", "v": COMM_VERSION,
                      "request_id": data.get("request_id"), "approved": approved,
                      "by": "sealed python client"}
            if approved and self._analyst is not None:
                answer["signature"] = sign(self._signing, approval_message(
                    str(data.get("request_id")), str(data.get("resource")),
                    thumbprint(self._kernel_jwk), token_hash(str(data.get("token", "")))))
            self._sealed("comm_msg", {"comm_id": self.comm_id, "data": answer})

    def _pump(self, until: Callable[[str, dict[str, Any], dict[str, Any]], bool],
              on_output: Callable[[str, dict[str, Any], dict[str, Any]], None] | None = None
              ) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            msg = self._next_iopub(deadline)
            msg_type, content, sealed = self._open(msg)
            ours = msg_type in ("comm_msg", "comm_open") and \
                content.get("comm_id") == self.comm_id
            if ours and self.channel is not None and not sealed and not (
                    self.lock_info is None and
                    (content.get("data") or {}).get("type") == "lock-refused"):
                continue  # under the lock only sealed comm messages are the kernel's
            if ours:
                self._on_comm(content.get("data") or {})
            elif on_output is not None:
                on_output(msg_type, content, msg)
            if until(msg_type, content, msg):
                return

    # -- the lock -------------------------------------------------------------------------

    def lock(self) -> Lock:
        """Open the comm, lock the kernel to this session, verify the token; or raise."""
        info = self.client.kernel_info(reply=True, timeout=self.timeout_s)["content"]
        workbench = info.get("workbench") or {}
        if not workbench:
            raise SealedSessionError(f"{info.get('implementation', 'this kernel')} is not a "
                                     "confidential kernel: it cannot be locked")
        if workbench.get("sealed"):
            # Its comm answers only that session now: a hello from here would go unanswered.
            raise SealedSessionError(f"the kernel is already locked to sealed session "
                                     f"{workbench['sealed'][:16]}; restart it to lock it here")
        transport_key = workbench.get("transport_key", "")
        self._send("comm_open", {"comm_id": self.comm_id, "target_name": COMM_TARGET,
                                 "data": {"type": "hello", "v": COMM_VERSION,
                                          "client": "workbench sealed client"}})
        status: dict[str, Any] = {}

        def is_status(msg_type: str, content: dict[str, Any], _msg: Any) -> bool:
            data = content.get("data") or {}
            if msg_type == "comm_msg" and content.get("comm_id") == self.comm_id \
                    and data.get("type") == "status":
                status.update(data)
                return True
            return False

        self._pump(is_status)
        if status.get("sealed"):
            raise SealedSessionError(f"the kernel is already locked to session "
                                     f"{status['sealed'][:16]}; restart it to lock it here")
        try:
            kernel_key = key_from_jwk(status.get("tee_pubkey") or {})
        except ValueError as err:
            raise SealedSessionError(f"the kernel's key is unusable: {err}") from None
        self._kernel_jwk = dict(status["tee_pubkey"])
        lock = {"type": "lock", "v": COMM_VERSION, "session_key": self.session_key.hex()}
        if self._analyst is not None:
            self._certificate = certify(self._analyst, self._key.public_key(),
                                        self._signing.public_key(), self._kernel_jwk)
            lock["certificate"] = self._certificate.to_json()
        self._send("comm_msg", {"comm_id": self.comm_id, "data": lock})
        self.channel = SealedChannel(self._key, kernel_key, Direction.TO_KERNEL)
        answer: dict[str, Any] = {}

        def is_answer(msg_type: str, content: dict[str, Any], _msg: Any) -> bool:
            data = content.get("data") or {}
            if msg_type == "comm_msg" and content.get("comm_id") == self.comm_id and \
                    (data.get("type") in ("locked", "lock-refused") or
                     (data.get("type") == "error" and data.get("request") == "lock")):
                answer.update(data)
                return True
            return False

        self._pump(is_answer)
        if answer.get("type") != "locked":
            self.channel = None
            raise SealedSessionError(f"the kernel refused the lock: "
                                     f"{answer.get('reason', 'no reason given')}")
        self.lock_info = self._verify(answer, status["tee_pubkey"], transport_key)
        return self.lock_info

    def _verify(self, locked: dict[str, Any], tee_pubkey: dict[str, Any],
                transport_key: str) -> Lock:
        """The frontend's own check of the token: nothing sealed is sent before it holds."""
        assert self.channel is not None
        evidence = locked.get("evidence") or {}
        broker, jwk = str(locked.get("broker", "")), locked.get("broker_jwk")
        if not isinstance(jwk, dict) or not evidence.get("token"):
            raise SealedSessionError("the kernel's lock carries no token or broker key")
        pinned = pin(broker, jwk, expected=self._expected, path=self._pins)
        try:
            claims = verify_token(evidence["token"], JWK(**jwk))
        except (TokenInvalid, ValueError) as err:
            raise SealedSessionError(f"the broker's token does not verify: {err}") from None
        bound = claims.get(TEE_PUBKEY_CLAIM) or {}
        checks = (
            (claims.get(SESSION_KEY_CLAIM, "") == self.session_key.hex(),
             f"the token binds another session key ({SESSION_KEY_CLAIM})"),
            ((bound.get("x"), bound.get("y")) == (tee_pubkey.get("x"), tee_pubkey.get("y")),
             f"the token binds another kernel key than the session's ({TEE_PUBKEY_CLAIM})"),
            (claims.get(TRANSPORT_KEY_CLAIM, "") == transport_key,
             f"the token binds another transport key than the kernel's "
             f"({TRANSPORT_KEY_CLAIM})"),
            (locked.get("session") == self.channel.fingerprint,
             "the kernel names another session than this one"),
        )
        for ok, why in checks:
            if not ok:
                raise SealedSessionError(f"refusing the kernel: {why}")
        # Only now, with the keys checked, can a mismatch be blamed on the certificate.
        problem = certifier_problem(claims, self._certificate)
        if problem is not None:
            raise SealedSessionError(f"refusing the kernel: {problem}")
        return Lock(self.channel.fingerprint, broker, pinned, claims, evidence)

    # -- running code ----------------------------------------------------------------------

    def execute(self, code: str,
                on_output: Callable[[str, dict[str, Any]], None] | None = None) -> CellRun:
        """Run ``code`` sealed; the outputs and the reply, opened."""
        return self.collect(self.send("execute_request", self.seal(code)), on_output)

    def seal(self, code: str) -> dict[str, Any]:
        """The outer content of a sealed execute request for ``code`` (not sent)."""
        return seal_request(self._locked(), "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})

    def send(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send a request as it is (sealed content from ``seal``); its message id."""
        return self._send(msg_type, content)

    def collect(self, msg_id: str,
                on_output: Callable[[str, dict[str, Any]], None] | None = None) -> CellRun:
        """The outputs and reply of the request ``msg_id``, opened in arrival order."""
        self._locked()
        run = CellRun(started=time.time())
        pending_clear = [False]
        refused, dropped = len(self.refused), self.dropped

        def gather(msg_type: str, content: dict[str, Any], msg: dict[str, Any]) -> None:
            if msg["parent_header"].get("msg_id") != msg_id:
                return
            if msg_type in ("stream", "display_data", "execute_result", "error",
                            "clear_output", "update_display_data"):
                _apply(run.outputs, msg_type, content, pending_clear)
                if on_output is not None:
                    on_output(msg_type, content)

        def idle(msg_type: str, content: dict[str, Any], msg: dict[str, Any]) -> bool:
            return msg_type == "status" and content.get("execution_state") == "idle" \
                and msg["parent_header"].get("msg_id") == msg_id

        self._pump(idle, gather)
        for output in run.outputs:
            output.pop("_display_id", None)
        run.reply = self._reply(msg_id)
        run.finished = time.time()
        run.refused = self.refused[refused:]
        run.dropped = self.dropped - dropped
        return run

    def _reply(self, msg_id: str) -> dict[str, Any]:
        """The sealed reply to ``msg_id``, opened on the shell lane; {} when the reply that
        came was refused (recorded), KernelNotLocked when the kernel is not ours any more."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type, content, sealed = self._open(msg)
            if sealed and msg_type.endswith("_reply"):
                return content
            if msg_type != "refused":  # sealed, but not a reply: an output moved to shell
                self.refused.append(SealRefused("spliced", f"a sealed {msg_type} came as the "
                                                           "reply on the shell channel"))
            self._check_still_locked()
            return {}
        raise SealedSessionError(f"no reply to the sealed request within {self.timeout_s:g} s")

    def _check_still_locked(self) -> None:
        """After a reply that is not this session's: is the kernel still locked to it?

        An unlocked kernel (restarted by the operator, or another one put in its place)
        answers a sealed request in the clear, having run the empty outer code. Its
        kernel_info is unsealed, so it only chooses the message: the reply is refused
        either way."""
        assert self.channel is not None
        try:
            info = self.client.kernel_info(reply=True, timeout=min(self.timeout_s, 30.0))
        except (queue.Empty, TimeoutError):
            return  # no answer: the reply is refused all the same, the cause unknown
        sealed = ((info.get("content") or {}).get("workbench") or {}).get("sealed")
        if sealed != self.channel.fingerprint:
            self.lost = (f"the kernel is no longer locked to sealed session "
                         f"{self.channel.fingerprint[:16]} (it says "
                         f"{'locked to ' + str(sealed)[:16] if sealed else 'not locked'}): it "
                         "was restarted or replaced, and its answers are not this session's; "
                         "lock the new kernel to go on")
            raise KernelNotLocked(self.lost)
