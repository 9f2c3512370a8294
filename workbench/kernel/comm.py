"""The ``workbench.attestation`` comm: the kernel's side of docs/comm-protocol.md.

Messages from the frontend are routed to a private subshell (ipykernel 7 subshells: a
thread with its own shell loop), so they are handled while a cell is running. That is what
lets a cell that needs a key send ``release-request`` and block until the analyst's
``approval`` arrives. ipykernel asks a comm which subshell its messages go to
(``_reply_subshell_for``); ours always names the private one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from workbench.kernel.frontend import Answer, Answers
from workbench.protocol.comm import COMM_TARGET, COMM_VERSION

log = logging.getLogger("workbench.kernel")


class CommFrontend:
    """Every open comm of our target; messages go to all, the first answer wins."""

    def __init__(self) -> None:
        self._comms: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._answers = Answers()
        self.subshell_id: str | None = None
        self.status: Callable[[], dict[str, Any]] = dict
        self.attest: Callable[[], Any] = lambda: None
        self.lock: Callable[[Any, Any, Any], None] = lambda _comm, _key, _cert: None
        self._handlers: dict[str, Callable[[Any, dict[str, Any]], None]] = {
            "hello": self._on_hello,
            "approval": self._on_approval,
            "attest": self._on_attest,
            "lock": self._on_lock,
        }

    # -- Frontend protocol ------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        # Without the private subshell an answer could not arrive while a cell runs.
        with self._lock:
            return bool(self._comms) and self.subshell_id is not None

    def send(self, kind: str, fields: dict[str, Any]) -> None:
        with self._lock:
            comms = list(self._comms.values())
        for comm in comms:
            self._send(comm, kind, fields)

    def ask(self, request_id: str, fields: dict[str, Any], timeout_s: float) -> Answer | None:
        self._answers.expect(request_id)
        self.send("release-request", fields)
        return self._answers.wait(request_id, timeout_s)

    # -- comm plumbing ----------------------------------------------------------------------

    def send_to(self, comm: Any, kind: str, fields: dict[str, Any]) -> None:
        """Send on one comm only (the answer to that frontend's request)."""
        self._send(comm, kind, fields)

    @staticmethod
    def _send(comm: Any, kind: str, fields: dict[str, Any]) -> None:
        try:
            comm.send({"type": kind, "v": COMM_VERSION, **fields})
        except Exception:  # a closed or broken comm must not break the cell
            log.warning("could not send %s on comm %s", kind, getattr(comm, "comm_id", "?"))

    def register(self, comm_manager: Any) -> None:
        comm_manager.register_target(COMM_TARGET, self._on_open)

    def _route(self, _data: Any, default: str | None) -> str | None:
        return self.subshell_id or default

    def _on_open(self, comm: Any, msg: dict[str, Any]) -> None:
        comm._reply_subshell_for = self._route
        with self._lock:
            self._comms[comm.comm_id] = comm
        comm.on_msg(lambda message, comm=comm: self._on_msg(comm, message))
        comm.on_close(lambda _message, comm=comm: self._on_close(comm))
        # The lab extension sends hello as a message after opening; a client may also put
        # it in the comm_open's data.
        data = msg.get("content", {}).get("data")
        if isinstance(data, dict) and "type" in data:
            self._on_msg(comm, msg)

    def _on_close(self, comm: Any) -> None:
        with self._lock:
            self._comms.pop(comm.comm_id, None)

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        data = msg.get("content", {}).get("data")
        kind = data.get("type") if isinstance(data, dict) else None
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            log.warning("ignoring comm message of unknown type %r", kind)
            return
        handler(comm, data)

    def _on_hello(self, comm: Any, _data: dict[str, Any]) -> None:
        self._send(comm, "status", self.status())

    def _on_approval(self, _comm: Any, data: dict[str, Any]) -> None:
        request_id, approved = data.get("request_id"), data.get("approved")
        if not isinstance(request_id, str) or not isinstance(approved, bool):
            log.warning("ignoring malformed approval message")
            return
        by = data.get("by") if isinstance(data.get("by"), str) else ""
        signature = data.get("signature") if isinstance(data.get("signature"), str) else ""
        if not self._answers.deliver(request_id, Answer(approved, by[:200], signature[:200])):
            log.warning("ignoring approval for %s: no cell waits for it", request_id)

    def _on_lock(self, comm: Any, data: dict[str, Any]) -> None:
        self.lock(comm, data.get("session_key"), data.get("certificate"))

    def _on_attest(self, comm: Any, _data: dict[str, Any]) -> None:
        # Attesting takes a round trip to the broker; keep this thread free for approvals.
        def run() -> None:
            try:
                self.attest()
            except Exception as err:
                self._send(comm, "error", {"request": "attest", "reason": str(err)})

        threading.Thread(target=run, name="workbench-attest", daemon=True).start()
