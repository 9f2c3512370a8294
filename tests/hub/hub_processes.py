"""JupyterHub as a process, configured by deploy/jupyterhub/jupyterhub_config.py in local
mode: loopback ports chosen free, configurable-http-proxy from npm, the dummy authenticator,
SimpleLocalProcessSpawner, and the hospital's broker passed to the single-user servers.

Users are created, started and given tokens through the hub's REST API with the token of the
config's ``workbench-admin`` service, as an operator's automation would. The hospital's
broker resolves the analysts' identity tokens at this hub's API (``--hub-api-url``), so it is
started knowing the hub's port."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from remote_kernel import JupyterServer, tail, wait_until_up

from workbench.demo.environment import Hospital
from workbench.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
# The local launcher (deploy/jupyterhub/local_hub.py) is what these tests start hubs with.
sys.path.insert(0, str(ROOT / "deploy" / "jupyterhub"))

from local_hub import HubPorts, hospital_for_hub, hub_environment, start_hub  # noqa: E402

__all__ = ["Hub", "HubPorts", "hospital_for_hub", "hub_environment", "running_hub"]

PROXY = ROOT / "deploy" / "jupyterhub" / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_START_TIMEOUT_S = 180.0
SERVER_START_TIMEOUT_S = 180.0


@dataclass
class Hub:
    url: str
    api_token: str
    base: Path
    log: Path
    users_dir: Path
    process: Any
    servers: dict[str, JupyterServer] = field(default_factory=dict)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/hub/api/{path.lstrip('/')}",
                             headers={"Authorization": f"token {self.api_token}"},
                             timeout=60, **kwargs)

    def home(self, user: str) -> Path:
        return self.users_dir / user

    def create_user(self, user: str) -> None:
        response = self.api("POST", f"users/{user}")
        assert response.status_code in (201, 409), (response.status_code, response.text)

    def start_server(self, user: str, timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
        response = self.api("POST", f"users/{user}/server")
        assert response.status_code in (201, 202, 400), (response.status_code, response.text)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            server = (model.get("servers") or {}).get("", {})
            if server.get("ready"):
                return
            if model.get("pending") is None and not server:
                raise RuntimeError(f"the server of {user} failed to start:\n{tail(self.log)}")
            time.sleep(0.5)
        raise RuntimeError(f"the server of {user} did not start within {timeout_s:g} s:\n"
                           f"{tail(self.log)}")

    def user_token(self, user: str) -> str:
        response = self.api("POST", f"users/{user}/tokens",
                            json={"note": "workbench hub test", "expires_in": 3600})
        assert response.status_code == 201, (response.status_code, response.text)
        return response.json()["token"]

    def user_server(self, user: str) -> JupyterServer:
        """The user's running single-user server, reached through the proxy (created,
        started and given a token on first use)."""
        if user not in self.servers:
            self.create_user(user)
            self.start_server(user)
            self.servers[user] = JupyterServer(f"{self.url}/user/{user}", self.user_token(user))
        return self.servers[user]


@contextlib.contextmanager
def running_hub(site: Hospital, base: Path, ports: HubPorts,
                env: Mapping[str, str] | None = None) -> Iterator[Hub]:
    """JupyterHub (and the proxy it starts) until the block ends; single-user servers are
    stopped by the hub on its way out (``cleanup_servers``)."""
    if not PROXY.is_file():
        raise RuntimeError(f"{PROXY} missing: run `make install` (npm ci in deploy/jupyterhub)")
    env = dict(env or hub_environment(site, base, ports))
    process, log = start_hub(env, base)
    hub = Hub(url=f"http://127.0.0.1:{env['WORKBENCH_HUB_PORT']}",
              api_token=env["WORKBENCH_HUB_API_TOKEN"], base=base, log=log,
              users_dir=Path(env["WORKBENCH_HUB_USERS_DIR"]), process=process)
    try:
        wait_until_up(f"{hub.url}/hub/api/", process, log, timeout_s=HUB_START_TIMEOUT_S)
        yield hub
    finally:
        stop_process(process)
        # SIGTERM makes the hub stop the proxy and every server it spawned; a proxy left
        # behind would hold its port, so look for one by the pid file it wrote.
        _stop_leftover_proxy(base / "state" / "jupyterhub-proxy.pid")


def _stop_leftover_proxy(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"configurable-http-proxy" in cmdline:
            os.kill(pid, 15)
