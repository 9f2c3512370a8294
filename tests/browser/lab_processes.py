"""JupyterLab as a process for the browser tests: loopback only, token auth, a temporary
root directory holding copies of the notebook, and Jupyter settings of its own so nothing
from the developer's setup (or a network fetch such as the news feed) gets in the way."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from workbench.demo.environment import Hospital, free_port
from workbench.demo.headless import kernel_search_path, notebook_path
from workbench.processes import stop_process

START_TIMEOUT_S = 120.0
# Plugins that would reach outside this machine, or pop up over the page under test.
DISABLED_PLUGINS = (
    "@jupyterlab/apputils-extension:announcements",
    "@jupyterlab/extensionmanager-extension:plugin",
)


@dataclass
class Lab:
    port: int
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def add_notebook(self, name: str) -> str:
        shutil.copy2(notebook_path(), self.root / name)
        return name


def _settings_dirs(base: Path, server_config: dict[str, Any]) -> dict[str, str]:
    config = base / "jupyter-config"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": dict.fromkeys(DISABLED_PLUGINS, True)}))
    (config / "jupyter_server_config.json").write_text(json.dumps(server_config))
    return {"JUPYTER_CONFIG_DIR": str(config),
            "JUPYTERLAB_SETTINGS_DIR": str(base / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "lab-workspaces")}


def _wait_until_up(lab: Lab) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({lab.process.returncode}):\n"
                               f"{lab.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{lab.url}/api/status", timeout=2,
                                 headers={"Authorization": f"token {lab.token}"})
            if response.status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"JupyterLab did not answer on {lab.url}:\n{lab.log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_lab(site: Hospital, base: Path, server_config: dict[str, Any] | None = None
                ) -> Iterator[Lab]:
    """JupyterLab serving ``base/root`` with the hospital's broker configured; settings in
    ``server_config`` (e.g. ``{"WorkbenchLab": {...}}``) go to its config file."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = site.kernel_env(WORKBENCH_KBS_URL=site.broker_url, **kernel_search_path(),
                          **_settings_dirs(base, server_config or {}))
    port, token = free_port(), secrets.token_urlsafe(24)
    log = base / "jupyterlab.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.open_browser=False",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=root)
    lab = Lab(port, token, root, log, process)
    try:
        _wait_until_up(lab)
        yield lab
    finally:
        stop_process(process)
