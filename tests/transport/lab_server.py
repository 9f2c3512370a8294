"""A Jupyter Server process with the workbench server extension, on a loopback port.

Kernels are started through its REST API, so the server's own (stock) kernel manager holds
their ZMQ connections; the test reads a kernel's connection file from the server's runtime
directory to talk to it as a second client, and drives the server's kernel websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workbench.demo.environment import free_port
from workbench.processes import stop_process

START_TIMEOUT_S = 120.0
NUDGES = 24


@dataclass
class LabServer:
    url: str
    token: str
    runtime_dir: Path
    log: Path
    process: subprocess.Popen

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/{path.lstrip('/')}", timeout=120,
                             headers={"Authorization": f"token {self.token}"}, **kwargs)

    def start_kernel(self, name: str = "confidential-python") -> str:
        response = self.api("POST", "api/kernels", json={"name": name})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def connection_file(self, kernel_id: str) -> Path:
        return self.runtime_dir / f"kernel-{kernel_id}.json"

    def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.api("POST", "workbench/verify", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def execute_over_websocket(self, kernel_id: str, code: str) -> str:
        return await execute_over_websocket(self.url, self.token, kernel_id, code)


async def execute_over_websocket(base_url: str, token: str, kernel_id: str, code: str) -> str:
    """Run ``code`` through a Jupyter server's kernel websocket; the stdout it printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = base_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    # In a header: JupyterHub's single-user servers refuse tokens in URLs.
    socket = await websocket_connect(HTTPRequest(url, headers={
        "Authorization": f"token {token}"}))
    session = uuid.uuid4().hex

    def send(msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        socket.write_message(json.dumps({
            "channel": "shell", "buffers": [], "metadata": {}, "parent_header": {},
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "test",
                       "session": session, "version": "5.3", "date": ""},
            "content": content}))
        return msg_id

    async def until_idle(msg_id: str) -> list[dict[str, Any]]:
        """Every message answering ``msg_id`` until its iopub status goes idle."""
        seen = []
        while True:
            raw = await socket.read_message()
            assert raw is not None, "the server closed the kernel websocket"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if msg["msg_type"] == "status" and \
                    msg["content"]["execution_state"] == "idle":
                return seen

    try:
        # First kernel_info round trips until one's idle status arrives: iopub flows.
        for _ in range(NUDGES):
            try:
                await asyncio.wait_for(until_idle(send("kernel_info_request", {})), 5)
                break
            except TimeoutError:
                continue
        seen = await asyncio.wait_for(until_idle(send("execute_request", {
            "code": code, "silent": False, "store_history": False,
            "user_expressions": {}, "allow_stdin": False})), 120)
        return "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream")
    finally:
        socket.close()


@contextlib.contextmanager
def lab_server(env: dict[str, str], base: Path) -> Iterator[LabServer]:
    token = secrets.token_hex(16)
    port = free_port()
    runtime = base / "runtime"
    runtime.mkdir(parents=True)
    log = base / "server.log"
    command = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
               "--no-browser", f"--ServerApp.token={token}", f"--ServerApp.root_dir={base}",
               "--ServerApp.jpserver_extensions={'workbench.labserver': True}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    handle = log.open("ab")
    process = subprocess.Popen(command, env={**env, "JUPYTER_RUNTIME_DIR": str(runtime)},
                               stdout=handle, stderr=subprocess.STDOUT)
    server = LabServer(f"http://127.0.0.1:{port}", token, runtime, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if server.api("GET", "api/status").status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        # The server shuts its kernels down on SIGTERM.
        stop_process(process, timeout_s=60)
        handle.close()
