"""Fixtures: the hospital's broker, a Jupyter Kernel Gateway serving the Confidential Python
kernelspec (deploy/kernel-gateway/kernel_gateway_config.py), and JupyterLab started with
``--gateway-url`` pointing at it (deploy/kernel-gateway/jupyter_server_config.py). All on
free loopback ports; each process stops with its fixture."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The REST/websocket client and process helpers are shared with the hub tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))

from remote_kernel import JupyterServer, start_process, wait_until_up

from workbench.demo.environment import Hospital, free_port, hospital
from workbench.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CONFIG = ROOT / "deploy" / "kernel-gateway" / "kernel_gateway_config.py"
LAB_CONFIG = ROOT / "deploy" / "kernel-gateway" / "jupyter_server_config.py"
START_TIMEOUT_S = 120.0


@dataclass
class Gateway:
    url: str
    token: str
    log: Path

    @property
    def api(self) -> JupyterServer:
        """The gateway's own REST API (what JupyterLab talks to)."""
        return JupyterServer(self.url, self.token)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(site: Hospital, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("gateway")
    port, token = free_port(), secrets.token_urlsafe(24)
    env = site.kernel_env(
        WORKBENCH_GATEWAY_PORT=str(port), WORKBENCH_GATEWAY_TOKEN=token,
        WORKBENCH_KBS_URL=site.broker_url, WORKBENCH_DATA_DIR=str(site.data_dir),
        WORKBENCH_ALLOW_SIMULATION="1",
        # Set on the gateway's machine, it must not reach the kernels: approving a release
        # is the analyst's decision (the test of the withheld environment relies on it).
        WORKBENCH_AUTO_APPROVE="1")
    log = base / "kernel-gateway.log"
    process = start_process([sys.executable, "-m", "kernel_gateway",
                             f"--config={GATEWAY_CONFIG}"], env, log, cwd=base)
    running = Gateway(f"http://127.0.0.1:{port}", token, log)
    try:
        wait_until_up(f"{running.url}/api", process, log, timeout_s=START_TIMEOUT_S,
                      headers=running.api.headers)
        yield running
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def lab(site: Hospital, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[JupyterServer]:
    """JupyterLab whose kernels are the gateway's; its server extension trusts the
    hospital's broker (published keys) and this machine's simulated-TEE platform key."""
    base = tmp_path_factory.mktemp("lab")
    (base / "root").mkdir()
    # No news feed or extension manager popping up over a browser test's page.
    labconfig = base / "jupyter-config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": dict.fromkeys(
        ("@jupyterlab/apputils-extension:announcements",
         "@jupyterlab/extensionmanager-extension:plugin"), True)}))
    port, token = free_port(), secrets.token_urlsafe(24)
    env = site.kernel_env(WORKBENCH_KBS_URL=site.broker_url,
                          WORKBENCH_GATEWAY_TOKEN=gateway.token,
                          JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
                          JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
                          JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"))
    log = base / "jupyterlab.log"
    process = start_process(
        [sys.executable, "-m", "jupyterlab", f"--config={LAB_CONFIG}",
         f"--gateway-url={gateway.url}", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={base / 'root'}",
         "--ServerApp.open_browser=False",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env, log, cwd=base / "root")
    server = JupyterServer(f"http://127.0.0.1:{port}", token)
    try:
        wait_until_up(f"{server.url}/api/status", process, log, timeout_s=START_TIMEOUT_S,
                      headers=server.headers)
        yield server
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def plain_scores(demo_assets):
    """The demo model's scores of the demo cohort, from the plaintext assets."""
    from demo_scores import plain_scores as compute

    return compute(demo_assets)
