"""A remote kernel as a browser-less JupyterLab client sees it: the Jupyter Server REST API
(start, list, delete kernels; the workbench's verify route) and the kernel's websocket,
speaking the Jupyter messaging protocol as JSON. Plus the process plumbing shared by the
hub, gateway and benchmark code: start a server, wait until it answers, stop it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websocket

ATTESTATION_MIME = "application/vnd.workbench.attestation+json"
PROTOCOL_VERSION = "5.3"


# -- processes ----------------------------------------------------------------------------

def start_process(cmd: Sequence[str], env: Mapping[str, str], log: Path,
                  cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(list(cmd), env=dict(env), stdout=handle,
                                stderr=subprocess.STDOUT, cwd=cwd)


def wait_until_up(url: str, process: subprocess.Popen, log: Path, *, timeout_s: float = 120,
                  headers: Mapping[str, str] | None = None,
                  ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200
                  ) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited ({process.returncode}) before "
                               f"answering {url}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if ok(httpx.get(url, headers=dict(headers or {}), timeout=2)):
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s:\n{tail(log)}")


def tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return f"({log} unreadable)"


# -- the Jupyter Server REST API ----------------------------------------------------------

@dataclass
class JupyterServer:
    """A Jupyter Server (JupyterLab, a hub user's server) reached at ``url`` with ``token``."""

    url: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url.rstrip('/')}/{path.lstrip('/')}",
                             headers=self.headers, timeout=kwargs.pop("timeout", 120), **kwargs)

    def start_kernel(self, name: str) -> str:
        response = self.request("POST", "api/kernels", json={"name": name})
        assert response.status_code == 201, (response.status_code, response.text)
        return response.json()["id"]

    def kernels(self) -> list[dict[str, Any]]:
        response = self.request("GET", "api/kernels")
        assert response.status_code == 200, response.text
        return response.json()

    def delete_kernel(self, kernel_id: str) -> None:
        response = self.request("DELETE", f"api/kernels/{kernel_id}")
        assert response.status_code in (204, 404), response.text

    def verify(self, report: Mapping[str, Any]) -> httpx.Response:
        """The workbench server extension's verdict on what a kernel reported."""
        return self.request("POST", "workbench/verify", json=dict(report))

    def channels_url(self, kernel_id: str) -> str:
        base = self.url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return f"{base}/api/kernels/{kernel_id}/channels"

    @contextlib.contextmanager
    def kernel(self, name: str, *, ready_timeout_s: float = 120) -> Iterator[KernelSocket]:
        """A kernel started through the REST API, connected over its websocket, deleted
        on exit."""
        kernel_id = self.start_kernel(name)
        try:
            with KernelSocket.connect(self, kernel_id, ready_timeout_s) as socket:
                yield socket
        finally:
            self.delete_kernel(kernel_id)


# -- the kernel websocket -----------------------------------------------------------------

@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    reply: dict[str, Any] = field(default_factory=dict)

    def data(self, mime: str) -> Any:
        for result in self.results:
            if mime in result:
                return result[mime]
        return None

    def last_json_line(self) -> Any:
        assert self.error is None, f"{self.error['ename']}: {self.error['evalue']}"
        return json.loads(self.stdout.strip().splitlines()[-1])


class KernelSocket:
    """The kernel's ``/api/kernels/<id>/channels`` websocket (JSON messages)."""

    def __init__(self, ws: websocket.WebSocket, kernel_id: str) -> None:
        self.ws = ws
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex

    @classmethod
    @contextlib.contextmanager
    def connect(cls, server: JupyterServer, kernel_id: str, ready_timeout_s: float = 120
                ) -> Iterator[KernelSocket]:
        ws = websocket.create_connection(server.channels_url(kernel_id),
                                         header=[f"{k}: {v}" for k, v in server.headers.items()],
                                         timeout=ready_timeout_s)
        socket = cls(ws, kernel_id)
        try:
            socket.wait_ready(ready_timeout_s)
            yield socket
        finally:
            ws.close()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "test",
                       "session": self.session, "version": PROTOCOL_VERSION,
                       "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel,
            "buffers": [],
        }))
        return msg_id

    def receive(self, deadline: float) -> dict[str, Any]:
        self.ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no message from the kernel in time") from None

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """The kernel_info_reply: the kernel answers on its shell channel."""
        deadline = time.monotonic() + timeout_s
        while True:
            msg_id = self.send("shell", "kernel_info_request", {})
            retry_at = min(deadline, time.monotonic() + 2.0)
            while time.monotonic() < retry_at:
                try:
                    msg = self.receive(retry_at)
                except TimeoutError:
                    break
                if msg["msg_type"] == "kernel_info_reply" and \
                        msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"kernel {self.kernel_id} not ready in {timeout_s:g} s")

    def execute(self, code: str, timeout_s: float = 300) -> Outcome:
        msg_id = self.send("shell", "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})
        deadline = time.monotonic() + timeout_s
        outcome, idle, replied = Outcome(), False, False
        while not (idle and replied):
            msg = self.receive(deadline)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(outcome, content["name"],
                        getattr(outcome, content["name"]) + content["text"])
            elif kind in ("execute_result", "display_data"):
                outcome.results.append(content["data"])
            elif kind == "error":
                outcome.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                outcome.reply, replied = content, True
        return outcome
