"""Fixtures: a real JupyterHub with users alice, bob and carol (carol in group 'oncology'),
and the hospital's broker resolving identity tokens at that hub, with the cohort's keys
restricted to alice and a trial key restricted to the oncology group."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from workbench.demo.environment import DATASET, Hospital, free_port
from workbench.processes import stop_process
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key

sys.path.insert(0, str(Path(__file__).parent))

from identity_hub import Hub, running_hub

BROKER_START_TIMEOUT_S = 60.0
IDENTITY_CACHE_S = 5
COHORT_KEYS = (table_key(DATASET, CLINICAL_ROLE), table_key(DATASET, PHI_ROLE))
TRIAL_KEY = "trial/table-key/clinical"


@dataclass
class HubHospital(Hospital):
    """The demo hospital, whose broker also asks the hub who is asking."""

    hub_api_url: str = ""

    def start_broker(self) -> None:
        config = self.workdir / "kbs.toml"
        config.write_text(f'hub_api_url = "{self.hub_api_url}"\n'
                          f"identity_cache_s = {IDENTITY_CACHE_S}\n")
        self.process = start_broker(self.home, self.port, self.admin_token, self.log, config)


def start_broker(home: Path, port: int, admin_token: str, log: Path, config: Path
                 ) -> subprocess.Popen:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "WORKBENCH_KBS_ADMIN_TOKEN": admin_token}
    for name in ("WORKBENCH_KBS_KEK", "WORKBENCH_KBS_KEK_FILE"):
        env.pop(name, None)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--config", str(config), "--log-level", "warning"],
            env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the broker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    stop_process(process, timeout_s=30)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, hub_ports) -> Iterator[HubHospital]:
    workdir = tmp_path_factory.mktemp("hospital")
    site = HubHospital(workdir=workdir, home=workdir / "home", data_dir=workdir / "data",
                       port=free_port(), admin_token=secrets.token_urlsafe(32),
                       hub_api_url=hub_ports["api_url"])
    site.home.mkdir(parents=True)
    try:
        site.start_broker()
        site.prepare()
        with site.admin() as admin:
            for path in COHORT_KEYS:
                admin.set_policy(path, site.policy, require_approval=None,
                                 approval_timeout_s=None, users=["alice"])
            admin.add_resource(TRIAL_KEY, secrets.token_bytes(32), site.policy,
                               require_approval=False, approval_timeout_s=None,
                               groups=["oncology"])
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="session")
def hub_ports() -> dict[str, str]:
    """Chosen before the broker starts, which needs the hub's API URL."""
    port = free_port()
    return {"hub_port": str(port), "api_url": f"http://127.0.0.1:{port}/hub/api"}


@pytest.fixture(scope="session")
def hub(site: HubHospital, hub_ports, tmp_path_factory) -> Iterator[Hub]:
    # What single-user servers (and their kernels) need to reach the hospital.
    environment = {"WORKBENCH_HOME": str(site.home), "WORKBENCH_KBS_URL": site.broker_url,
                   "WORKBENCH_DATA_DIR": str(site.data_dir),
                   "WORKBENCH_ALLOW_SIMULATION": "1",
                   "JUPYTER_PATH": str(Path(__file__).resolve().parents[2])}
    with running_hub(tmp_path_factory.mktemp("hub"), environment,
                     hub_port=int(hub_ports["hub_port"])) as running:
        for user in ("alice", "bob", "carol"):
            running.create_user(user)
        running.add_to_group("oncology", "carol")
        yield running


@pytest.fixture(scope="session")
def tokens(hub: Hub) -> dict[str, str]:
    return {user: hub.identity_token(user)[0] for user in ("alice", "bob", "carol")}
