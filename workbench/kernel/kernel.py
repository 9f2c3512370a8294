"""The Confidential Python kernel: IPython plus an attested session with the key broker."""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.kernel.comm import CommFrontend
from workbench.kernel.lock import LockRefused
from workbench.kernel.state import KernelState, start_state
from workbench.protocol.comm import COMM_TARGET
from workbench.sealed import SealRefused

# Set while the kernel sends something that must stay readable under a lock: a refusal
# to a client that holds no session key, the reason a lock was refused.
_PLAIN = contextvars.ContextVar("workbench_plain_send", default=False)

SUBSHELL_START_TIMEOUT_S = 10.0


def _one_line_error(shell: Any, etype: type, value: BaseException, _tb: Any,
                    tb_offset: int | None = None) -> list[str]:
    """Show a workbench refusal as its message alone: it names the thing and the cause."""
    stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


class ConfidentialKernel(IPythonKernel):
    implementation = "confidential-python"
    implementation_version = __version__

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frontend = CommFrontend()
        # The runtime is resolved and the ephemeral key pair created before any cell runs;
        # the channels' CurveZMQ key (made by the app before the sockets were bound) is bound
        # into every attestation.
        transport_key = getattr(self.parent, "transport_key", b"")
        self.workbench: KernelState = start_state(self.frontend, transport_key=transport_key)
        self.frontend.status = self.workbench.status
        self.frontend.attest = self.workbench.attest
        self.frontend.lock = self._lock_session
        self.frontend.register(self.comm_manager)
        self._seal_messages()
        self._guard_control()
        if self.shell is not None:
            self.shell.set_custom_exc((WorkbenchError,), _one_line_error)

    # -- the sealed session ------------------------------------------------------------------

    @staticmethod
    @contextmanager
    def _plain() -> Iterator[None]:
        token = _PLAIN.set(True)
        try:
            yield
        finally:
            _PLAIN.reset(token)

    def _seal_messages(self) -> None:
        """Route everything the kernel sends through the lock, and stdin replies too.

        Every output, reply and comm message leaves through the session's ``send``; sealing
        there catches them all (display hook, streams, comms, replies). Sealing and handing
        to the socket happen under one lock so each lane's counters leave in order.
        """
        session, seal = self.session, self.workbench.seal
        if session is None:
            return
        send, recv = session.send, session.recv
        ordered = threading.RLock()

        def sealed_send(stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None,
                        ident: Any = None, buffers: Any = None, track: bool = False,
                        header: Any = None, metadata: Any = None) -> Any:
            if seal.channel is None or _PLAIN.get():
                return send(stream, msg_or_type, content, parent, ident, buffers, track, header,
                            metadata)
            prebuilt = isinstance(msg_or_type, dict)
            msg_type = msg_or_type["header"]["msg_type"] if prebuilt else msg_or_type
            body = msg_or_type.get("content", {}) if prebuilt else content
            if isinstance(body, bytes | str):
                body = json.loads(body)
            with ordered:
                outer = seal.seal(msg_type, body or {})
                if outer is None:
                    return send(stream, msg_or_type, content, parent, ident, buffers, track,
                                header, metadata)
                outer_type, outer_content = outer
                if prebuilt:
                    msg = {**msg_or_type, "msg_type": outer_type, "metadata": {},
                           "header": {**msg_or_type["header"], "msg_type": outer_type},
                           "content": outer_content, "buffers": []}
                    return send(stream, msg, None, parent, ident, None, track, header, None)
                # Buffers (widgets' binary state) have no sealed form: they are not sent.
                return send(stream, outer_type, outer_content, parent, ident, None, track,
                            header, {})

        def sealed_recv(socket: Any, *args: Any, **kwargs: Any) -> Any:
            # Only ipykernel's input() receives this way, on stdin (shell and control
            # messages reach should_handle and the control guard instead).
            ident, msg = recv(socket, *args, **kwargs)
            if msg is None or socket is not self.stdin_socket:
                return ident, msg
            header = msg.get("header") or {}
            try:
                opened = seal.admit_input(str(header.get("msg_type")), msg.get("content"))
            except SealRefused as err:
                self._log_refusal(header, err)
                # Dropped, as if it never came: input() waits on for the session's answer
                # (a refused message changes nothing, docs/sealed-sessions.md).
                return None, None
            if opened is not None:
                msg["content"] = opened
            return ident, msg

        session.send = sealed_send
        session.recv = sealed_recv

    def should_handle(self, stream: Any, msg: dict[str, Any], idents: Any) -> Any:
        msg_type = msg["header"]["msg_type"]
        try:
            opened = self.workbench.seal.admit(msg_type, msg["content"])
        except SealRefused as err:
            self._refuse(stream, msg, idents, err)
            return False
        if opened is not None:
            msg["content"] = opened
        return super().should_handle(stream, msg, idents)

    def _log_refusal(self, header: dict[str, Any], err: SealRefused) -> None:
        self.log.warning("refused %s %s: %s", header.get("msg_type"), header.get("msg_id"),
                         err)

    def _refuse(self, stream: Any, msg: dict[str, Any], idents: Any, err: SealRefused) -> None:
        msg_type = msg["header"]["msg_type"]
        self._log_refusal(msg["header"], err)
        reply = self.workbench.seal.refusal(msg_type, err)
        if reply is not None:
            with self._plain():
                self.session.send(stream, reply[0], reply[1], msg, idents)

    def _guard_control(self) -> None:
        """The control channel takes every shell request too (and the debugger's): each
        handler goes through the lock first, as the shell's do in ``should_handle``."""
        def guarded(handler: Any) -> Any:
            def handle(stream: Any, idents: Any, msg: dict[str, Any]) -> Any:
                try:
                    opened = self.workbench.seal.admit(msg["header"]["msg_type"],
                                                       msg["content"])
                except SealRefused as err:
                    self._refuse(stream, msg, idents, err)
                    return None
                if opened is not None:
                    msg["content"] = opened
                return handler(stream, idents, msg)
            return handle

        self.control_handlers = {t: guarded(h) for t, h in self.control_handlers.items()}

    def _lock_session(self, comm: Any, session_key: Any, certificate: Any = None) -> None:
        """Lock to the frontend's session key, attest binding it, say ``locked`` sealed."""
        try:
            self.workbench.lock_to(session_key, certificate)
        except LockRefused as err:
            with self._plain():
                self.frontend.send_to(comm, "lock-refused", {"reason": str(err)})
            return

        def attest() -> None:
            try:
                self.workbench.attest()
            except Exception as err:
                self.frontend.send_to(comm, "error", {"request": "lock", "reason": str(err)})
                return
            self.frontend.send_to(comm, "locked", self.workbench.locked_message())

        threading.Thread(target=attest, name="workbench-lock", daemon=True).start()

    @property
    def runtime_line(self) -> str:
        runtime = self.workbench.runtime
        caveat = "" if runtime.hardware else " - NOT hardware-protected"
        return f"Confidential Python {__version__}, runtime: {runtime.name}{caveat}"

    @property
    def banner(self) -> str:  # type: ignore[override]
        base = super().banner or ""
        return f"{base}\n{self.runtime_line}\n{self.workbench.runtime.description}\n"

    @property
    def kernel_info(self) -> dict[str, Any]:
        info = super().kernel_info
        # No debugger: it evaluates code outside any sealed session (and a locked kernel
        # refuses its requests), so frontends are told there is none.
        info["supported_features"] = [f for f in info.get("supported_features", [])
                                      if f != "debugger"]
        info["debugger"] = False
        runtime = self.workbench.runtime
        info["workbench"] = {"runtime": runtime.name, "tee": self.workbench.status()["tee"],
                             "simulated": not runtime.hardware,
                             "broker": self.workbench.config.broker_url,
                             "comm_target": COMM_TARGET,
                             "transport_key": self.workbench.transport_key.hex(),
                             "identity": self.workbench.identity_source,
                             "sealed": self.workbench.seal.fingerprint}
        return info

    def start(self) -> None:
        super().start()
        self.frontend.subshell_id = self._private_subshell()

    def _private_subshell(self) -> str | None:
        """A subshell of our own, created on the shell channel thread as ipykernel requires."""
        channel = getattr(self, "shell_channel_thread", None)
        if channel is None:
            self.log.warning("no shell channel thread: release requests cannot be answered "
                             "while a cell runs")
            return None
        created: dict[str, str] = {}
        done = threading.Event()

        def create() -> None:
            try:
                created["id"] = channel.manager._create_subshell()
            finally:
                done.set()

        channel.io_loop.add_callback(create)
        if not done.wait(SUBSHELL_START_TIMEOUT_S) or "id" not in created:
            self.log.warning("could not create the workbench subshell")
            return None
        return created["id"]
