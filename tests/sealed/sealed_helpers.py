"""Kernels for the sealed-session tests, and the operator's tools against them.

The operator holds what the machine holds: the connection file (its HMAC key, its ports)
and the kernel's published CurveZMQ server key. ``operator_client`` builds the project's
own CurveZMQ-capable client from exactly that, as any process next to the kernel could.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient

from workbench.client.sealed import SealedKernel
from workbench.demo.environment import Hospital
from workbench.kernel.transport import (
    CurveKernelManager,
    adopt,
    read_server_key,
    server_key_path,
)

ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "confidential-python"
TIMEOUT_S = 120


@dataclass
class Started:
    manager: Any
    client: Any
    log: Path
    others: list[Any] = field(default_factory=list)

    def analyst(self, tmp_path: Path, **options: Any) -> SealedKernel:
        """The analyst's sealed frontend on this kernel (not locked yet)."""
        options.setdefault("pins", tmp_path / "known_brokers.json")
        return SealedKernel(self.client, timeout_s=TIMEOUT_S, **options)

    def stop(self) -> None:
        for client in (self.client, *self.others):
            client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def start(site: Hospital, log: Path, **env: str) -> Started:
    manager = CurveKernelManager(kernel_name=KERNEL_NAME)
    with log.open("ab") as handle:
        manager.start_kernel(env={**site.kernel_env(**env), "JUPYTER_PATH": str(ROOT)},
                             stdout=handle, stderr=handle)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=TIMEOUT_S)
    return Started(manager, client, log)


def operator_client(started: Started) -> BlockingKernelClient:
    """A second client made from the connection file and the published server key."""
    connection_file = started.manager.connection_file
    client = adopt(BlockingKernelClient(connection_file=connection_file))
    client.load_connection_file()
    client.curve_publickey = read_server_key(server_key_path(connection_file))
    client.curve_secretkey = None
    client.start_channels()
    started.others.append(client)
    return client


def request(client: BlockingKernelClient, msg_type: str, content: dict[str, Any],
            channel: str = "shell") -> dict[str, Any]:
    """Send one request and return its reply's content."""
    msg = client.session.msg(msg_type, content)
    getattr(client, f"{channel}_channel").send(msg)
    while True:
        reply = getattr(client, f"get_{channel}_msg")(timeout=TIMEOUT_S)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return dict(reply["content"])


class Subscriber:
    """A passive IOPub subscriber: records every message the kernel publishes."""

    def __init__(self, client: BlockingKernelClient) -> None:
        self._client = client
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self._client.get_iopub_msg(timeout=0.2))
            except queue.Empty:
                pass

    def close(self) -> str:
        """Stop, and everything recorded as one text (buffers included, base64)."""
        self._stop.set()
        self._thread.join(timeout=5)
        return json.dumps(self.messages, default=lambda v: v.hex() if isinstance(v, bytes)
                          else str(v))


def new_comm_id() -> str:
    return uuid.uuid4().hex
