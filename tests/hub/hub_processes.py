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
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from remote_kernel import JupyterServer, start_process, stop_process, tail, wait_until_up

from workbench.demo.environment import Hospital, free_port

BROKER_START_TIMEOUT_S = 60.0

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
PROXY = ROOT / "deploy" / "jupyterhub" / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_START_TIMEOUT_S = 180.0
SERVER_START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class HubPorts:
    """Free loopback ports of one hub: the proxy (public), the hub's API, the proxy's API."""

    public: int
    internal: int
    proxy_api: int

    @classmethod
    def free(cls) -> HubPorts:
        return cls(free_port(), free_port(), free_port())

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.internal}/hub/api"


@contextlib.contextmanager
def hospital_for_hub(workdir: Path, ports: HubPorts, **options: Any) -> Iterator[Hospital]:
    """``workbench.demo.environment.hospital``, with a broker that checks analysts'
    identities at the hub (which need not be up yet: identities are looked up per request)."""
    workdir.mkdir(parents=True, exist_ok=True)
    site = Hospital(workdir=workdir, home=workdir / "home", data_dir=workdir / "data",
                    port=free_port(), admin_token=secrets.token_urlsafe(32))
    site.home.mkdir(parents=True, exist_ok=True)
    try:
        _start_broker(site, ["--hub-api-url", ports.hub_api_url])
        site.prepare(**options)
        yield site
    finally:
        site.stop()


def _start_broker(site: Hospital, extra_args: list[str]) -> None:
    env = {**os.environ, "WORKBENCH_HOME": str(site.home),
           "WORKBENCH_KBS_ADMIN_TOKEN": site.admin_token}
    for name in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE"):
        env.pop(name, None)
    site.process = start_process(
        [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--host", "127.0.0.1",
         "--port", str(site.port), "--log-level", "warning", *extra_args], env, site.log)
    wait_until_up(f"{site.broker_url}/healthz", site.process, site.log,
                  timeout_s=BROKER_START_TIMEOUT_S)


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

    def stop_server(self, user: str) -> None:
        response = self.api("DELETE", f"users/{user}/server")
        assert response.status_code in (202, 204), (response.status_code, response.text)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.api("GET", f"users/{user}").json().get("servers"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the server of {user} did not stop:\n{tail(self.log)}")

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


def hub_environment(site: Hospital, base: Path, ports: HubPorts, **extra: str
                    ) -> dict[str, str]:
    """The hub's environment: ports, state, the admin service token, and the hospital's
    broker, data and (simulated-TEE) home for the single-user servers."""
    env = site.kernel_env(
        WORKBENCH_HUB_MODE="local",
        WORKBENCH_HUB_PORT=str(ports.public),
        WORKBENCH_HUB_INTERNAL_PORT=str(ports.internal),
        WORKBENCH_HUB_PROXY_API_PORT=str(ports.proxy_api),
        WORKBENCH_HUB_STATE_DIR=str(base / "state"),
        WORKBENCH_HUB_USERS_DIR=str(base / "users"),
        WORKBENCH_HUB_API_TOKEN=secrets.token_hex(32),
        WORKBENCH_KBS_URL=site.broker_url,
        WORKBENCH_DATA_DIR=str(site.data_dir),
        WORKBENCH_ALLOW_SIMULATION="1",
        **extra,
    )
    # The proxy's token comes from the hub; anything inherited would be someone else's.
    env.pop("CONFIGPROXY_AUTH_TOKEN", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    return env


@contextlib.contextmanager
def running_hub(site: Hospital, base: Path, ports: HubPorts,
                env: Mapping[str, str] | None = None) -> Iterator[Hub]:
    """JupyterHub (and the proxy it starts) until the block ends; single-user servers are
    stopped by the hub on its way out (``cleanup_servers``)."""
    if not PROXY.is_file():
        raise RuntimeError(f"{PROXY} missing: run `make install` (npm ci in deploy/jupyterhub)")
    env = dict(env or hub_environment(site, base, ports))
    log = base / "jupyterhub.log"
    process = start_process([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], env, log,
                            cwd=base)
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
