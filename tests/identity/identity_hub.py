"""A real JupyterHub on loopback ports: dummy authenticator, the simple local spawner and
configurable-http-proxy from npm, with an admin service whose token manages users, groups
and tokens through the REST API (as an operator's automation would)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workbench.demo.environment import free_port
from workbench.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
PROXY = ROOT / "deploy" / "jupyterhub" / "node_modules" / ".bin" / "configurable-http-proxy"
START_TIMEOUT_S = 180.0
SERVICE = "identity-test-admin"

CONFIG = '''
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{state}/users/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {server_args!r}
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.environment = {{**{environment!r},
                          "WORKBENCH_IDENTITY_TOKEN": __import__(
                              "workbench.brokerclient.identity",
                              fromlist=["hub_identity_token"]).hub_identity_token}}
c.JupyterHub.services = [{{"name": "{service}", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{
    "name": "{service}",
    "scopes": ["admin:users", "admin:groups", "tokens", "list:users", "read:users",
               "admin:servers", "access:servers"],
    "services": ["{service}"],
}}]
'''


@dataclass
class Hub:
    url: str
    api_url: str
    token: str
    log: Path
    process: subprocess.Popen

    def api(self, method: str, path: str, *, token: str | None = None,
            **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.api_url}/{path.lstrip('/')}", timeout=60,
                             headers={"Authorization": f"token {token or self.token}"},
                             **kwargs)

    def create_user(self, name: str) -> None:
        response = self.api("POST", f"users/{name}")
        assert response.status_code in (201, 409), response.text

    def add_to_group(self, group: str, *users: str) -> None:
        response = self.api("POST", f"groups/{group}")
        assert response.status_code in (201, 409), response.text
        response = self.api("POST", f"groups/{group}/users", json={"users": list(users)})
        assert response.status_code == 200, response.text

    def identity_token(self, user: str) -> tuple[str, str]:
        """(token, id) of a token with no scopes: it can identify its owner, nothing else
        (what ``hub_identity_token`` mints when the hub starts a server)."""
        response = self.api("POST", f"users/{user}/tokens",
                            json={"scopes": [], "note": "identity test", "expires_in": 3600})
        assert response.status_code == 201, response.text
        return response.json()["token"], response.json()["id"]

    def start_server(self, user: str) -> None:
        response = self.api("POST", f"users/{user}/server")
        assert response.status_code in (201, 202), response.text
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{user}").json()
            if (model.get("servers") or {}).get("", {}).get("ready"):
                return
            assert model.get("pending") or model.get("servers"), \
                f"the server of {user} failed to start: {self.log.read_text()[-3000:]}"
            time.sleep(0.5)
        raise AssertionError(f"the server of {user} did not start: {self.log.read_text()[-3000:]}")

    def start_kernel(self, user: str, name: str) -> str:
        """A kernel in the user's server, through the proxy, as the admin service."""
        response = httpx.post(f"{self.url}/user/{user}/api/kernels", json={"name": name},
                              headers={"Authorization": f"token {self.token}"}, timeout=180)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def revoke(self, user: str, token_id: str) -> None:
        response = self.api("DELETE", f"users/{user}/tokens/{token_id}")
        assert response.status_code == 204, response.text


def _config(base: Path, ports: dict[str, int], token: str, environment: dict[str, str]
            ) -> Path:
    state = base / "state"
    state.mkdir(parents=True)
    server_args = ["--allow-root"] if os.geteuid() == 0 else []
    path = base / "jupyterhub_config.py"
    path.write_text(CONFIG.format(**ports, proxy=str(PROXY), pid_file=str(state / "proxy.pid"),
                                  state=state, python=sys.executable, server_args=server_args,
                                  environment=environment, service=SERVICE, token=token))
    return path


@contextlib.contextmanager
def running_hub(base: Path, environment: dict[str, str], hub_port: int | None = None
                ) -> Iterator[Hub]:
    if not PROXY.is_file():
        raise RuntimeError(f"{PROXY} missing: run `make install` (npm ci in deploy/jupyterhub)")
    ports = {"port": free_port(), "hub_port": hub_port or free_port(),
             "proxy_api_port": free_port()}
    token = secrets.token_hex(32)
    config = _config(base, ports, token, environment)
    log = base / "jupyterhub.log"
    handle = log.open("ab")
    env = {**os.environ, **environment}
    for inherited in ("JUPYTERHUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN"):
        env.pop(inherited, None)
    process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)],
                               cwd=base, env=env, stdout=handle, stderr=subprocess.STDOUT)
    hub = Hub(f"http://127.0.0.1:{ports['port']}",
              f"http://127.0.0.1:{ports['hub_port']}/hub/api", token, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited: {log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{hub.url}/hub/api/", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyterhub did not start: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield hub
    finally:
        stop_hub(hub, base)
        handle.close()


def stop_hub(hub: Hub, base: Path) -> None:
    """SIGTERM: the hub stops the servers it spawned and its proxy."""
    stop_process(hub.process, timeout_s=60)
    pid_file = base / "state" / "proxy.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().strip())
        if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
