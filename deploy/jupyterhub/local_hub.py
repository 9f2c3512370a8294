"""Try the workbench's JupyterHub on this machine, until Ctrl-C:

    make install
    .venv/bin/python deploy/jupyterhub/local_hub.py [--workdir DIR] [--port 8000]

It plays the hospital (the demo's key broker on a free loopback port, with the sealed cohort
and model registered under a simulated-TEE policy pinning this installation's kernel) and
starts JupyterHub with jupyterhub_config.py in local mode: loopback only, the dummy
authenticator (any name, any password), SimpleLocalProcessSpawner (homes under the working
directory, each seeded with the walkthrough notebook). The broker checks analysts against
this hub (``--hub-api-url``), so per-user release rules work: restrict a resource with
``workbench kbs policy set PATH --policy ... --user NAME`` (the command prints how).

The hub tests and the remote-kernel benchmark start their hubs with the functions below.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.processes import stop_process

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jupyterhub_config.py"
BROKER_START_TIMEOUT_S = 60.0
HUB_START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class HubPorts:
    """Loopback ports of one hub: the proxy (public), the hub's own API, the proxy's API."""

    public: int
    internal: int
    proxy_api: int

    @classmethod
    def free(cls, public: int | None = None) -> HubPorts:
        return cls(public or free_port(), free_port(), free_port())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public}"

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.internal}/hub/api"


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited ({process.returncode}) before "
                               f"answering {url}; see {log}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s; see {log}")


@contextlib.contextmanager
def hospital_for_hub(workdir: Path, ports: HubPorts, **options: Any) -> Iterator[Any]:
    """The demo hospital (``workbench.demo.environment``) with a broker that resolves the
    analysts' identity tokens at this hub (it need not be up yet: lookups are per request)."""
    from workbench.demo.environment import Hospital

    workdir.mkdir(parents=True, exist_ok=True)
    site = Hospital(workdir=workdir, home=workdir / "home", data_dir=workdir / "data",
                    port=free_port(), admin_token=secrets.token_urlsafe(32))
    site.home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WORKBENCH_HOME": str(site.home),
           "WORKBENCH_KBS_ADMIN_TOKEN": site.admin_token}
    for name in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE"):
        env.pop(name, None)
    try:
        with site.log.open("ab") as log:
            site.process = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--host", "127.0.0.1",
                 "--port", str(site.port), "--log-level", "warning",
                 "--hub-api-url", ports.hub_api_url],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_http(f"{site.broker_url}/healthz", site.process, site.log,
                      BROKER_START_TIMEOUT_S)
        site.prepare(**options)
        yield site
    finally:
        site.stop()


def hub_environment(site: Any, base: Path, ports: HubPorts, **extra: str) -> dict[str, str]:
    """The hub's environment in local mode: its ports and state, the admin service's token,
    and the hospital's broker, data and (simulated-TEE) home for the single-user servers."""
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


def start_hub(env: Mapping[str, str], base: Path) -> tuple[subprocess.Popen, Path]:
    """``jupyterhub -f jupyterhub_config.py`` in ``base``; the hub starts the proxy itself."""
    base.mkdir(parents=True, exist_ok=True)
    log = base / "jupyterhub.log"
    with log.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)],
                                   env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
                                   cwd=base)
    return process, log


def _owner_files(site: Any) -> tuple[Path, Path]:
    """The broker's admin token (0600) and the demo policy, for the owner's commands."""
    import json

    token_file = site.workdir / "admin-token"
    token_file.touch(mode=0o600)
    token_file.write_text(site.admin_token)
    policy_file = site.workdir / "policy.json"
    policy_file.write_text(json.dumps(site.policy, indent=2))
    return token_file, policy_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="JupyterHub with the workbench, locally "
                                                 "(demo broker and data), until Ctrl-C")
    parser.add_argument("--workdir", type=Path, help="where state, homes and logs go "
                                                     "(default: a new temporary directory)")
    parser.add_argument("--port", type=int, default=8000, help="the hub's port (loopback)")
    args = parser.parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="workbench-hub-"))).resolve()
    ports = HubPorts.free(args.port)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with hospital_for_hub(workdir / "hospital", ports) as site:
            env = hub_environment(site, workdir / "hub", ports)
            process, log = start_hub(env, workdir / "hub")
            try:
                wait_for_http(f"{ports.url}/hub/api/", process, log, HUB_START_TIMEOUT_S)
                token_file, policy_file = _owner_files(site)
                print(f"JupyterHub: {ports.url} (log in with any name and password)\n"
                      f"key broker: {site.broker_url}; to restrict the cohort to one analyst:\n"
                      f"  workbench kbs policy set cohort/table-key/clinical --url "
                      f"{site.broker_url} --admin-token-file {token_file} --policy "
                      f"{policy_file} --user NAME\n"
                      f"working directory {workdir} (hub log: {log}); Ctrl-C stops",
                      flush=True)
                process.wait()
                print(f"JupyterHub exited ({process.returncode}); see {log}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("stopping JupyterHub and the key broker", flush=True)
                return 0
            finally:
                stop_process(process)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
