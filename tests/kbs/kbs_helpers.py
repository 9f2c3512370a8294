"""Helpers: the real broker as an HTTP server on 127.0.0.1, and real clients talking to it.

``start_broker`` runs ``python -m workbench.cli kbs serve`` in a subprocess with its own
WORKBENCH_HOME (which holds the store, the dev KEK and the simulated TEE's platform key the
broker trusts) and waits for ``/healthz``. Clients use a simulated TEE provider measuring
a small fixed package directory, so the measurement a policy pins does not change while
the source tree is being edited.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.brokerclient import BrokerSession
from workbench.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token-" + "x" * 24
# Two replicas importing the server at once on a loaded 2-core machine took over 30 s in CI.
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Broker:
    home: Path
    port: int
    config: Path
    log: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.home / "kbs" / "kbs.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db}"

    def start(self) -> Broker:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--port", str(self.port),
             "--config", str(self.config), "--log-level", "warning"],
            cwd=ROOT, env={**self.env, "PYTHONFAULTHANDLER": "1"}, stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited ({self.process.returncode}):\n"
                                   f"{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        # A broker that never answers says where it is stuck: faulthandler prints every
        # thread's stack to the log on SIGABRT.
        self.process.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.stop()
        raise RuntimeError(f"broker did not come up in {START_TIMEOUT_S:g} s:\n"
                           f"{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=10)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/admin/v0", timeout=30,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def add_resource(self, path: str, key: bytes, policy: dict[str, Any], **options: Any
                     ) -> dict[str, Any]:
        with self.admin() as admin:
            response = admin.post("/resources", json={
                "path": path, "key": base64.b64encode(key).decode(), "policy": policy,
                **options})
        assert response.status_code == 201, response.text
        return response.json()


def make_broker(base: Path, **settings: Any) -> Broker:
    home = base / "broker-home"
    home.mkdir(parents=True, exist_ok=True)
    config = base / "kbs.json"
    config.write_text(json.dumps(settings))
    env = {**os.environ, "WORKBENCH_HOME": str(home), "WORKBENCH_KBS_ADMIN_TOKEN": ADMIN_TOKEN}
    for name in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE"):
        env.pop(name, None)
    return Broker(home=home, port=free_port(), config=config, log=base / "broker.log", env=env)


@contextlib.contextmanager
def running_broker(base: Path, **settings: Any) -> Iterator[Broker]:
    broker = make_broker(base, **settings).start()
    try:
        yield broker
    finally:
        broker.stop()


def provider_for(broker: Broker, package: Path, *, home: Path | None = None
                 ) -> SimulatedProvider:
    """A simulated TEE the broker trusts (its platform key lives in the broker's home)."""
    return SimulatedProvider(home=home or broker.home, package_dir=package,
                             kernels_dir=package / "no-kernels")


def sim_policy(provider: SimulatedProvider, **overrides: Any) -> dict[str, Any]:
    policy = {
        "id": "simulated-test-kernel",
        "allowed_tee": ["simulated"],
        "allow_simulation": True,
        "reference_values": {"simulated": {"measurement": provider.measurement().measurement}},
    }
    policy.update(overrides)
    return policy


def session_for(broker: Broker, provider: SimulatedProvider) -> BrokerSession:
    return BrokerSession(broker.url, provider=provider)


def unique(name: str) -> str:
    """A fresh resource path per test (module-scoped brokers are shared)."""
    return f"{name}-{os.urandom(4).hex()}/table-key/phi"
