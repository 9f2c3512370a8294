"""``workbench demo``: the hospital's setup, then JupyterLab on the walkthrough.

JupyterLab runs until Ctrl-C (or SIGTERM), then the broker stops and the temporary
directory is left for inspection. The notebook is copied into the working directory, so
outputs saved from the session (which hold decrypted results) stay out of the repository.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from workbench.demo.environment import free_port, hospital
from workbench.demo.headless import kernel_search_path
from workbench.demo.walkthroughs import DEFAULT, WALKTHROUGHS
from workbench.errors import WorkbenchError
from workbench.processes import stop_process

LAB_START_TIMEOUT_S = 120.0


def _wants_browser() -> bool:
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY")
                                            or os.environ.get("WAYLAND_DISPLAY"))


def _wait_until_up(process: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WorkbenchError(f"JupyterLab exited ({process.returncode}); see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/status", params={"token": token},
                         timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise WorkbenchError(f"JupyterLab did not answer on {url} within "
                         f"{LAB_START_TIMEOUT_S:g} s; see {log}")


def run_lab(workdir: Path, rows: int = 569, seed: int = 7, *,
            open_browser: bool | None = None, walkthrough: str = DEFAULT) -> int:
    chosen = WALKTHROUGHS[walkthrough]
    # SIGTERM (e.g. from a CI job's timeout) ends the session like Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with hospital(workdir, rows, seed) as site:
            if chosen.prepare is not None:
                site.timed(f"hospital: publish what {chosen.title} needs",
                           lambda: chosen.prepare(site))
            for name, seconds in site.steps:
                print(f"  {name:<62} {seconds * 1000:9.1f} ms", flush=True)
            notebooks = workdir / "notebooks"
            notebooks.mkdir(exist_ok=True)
            shutil.copy2(chosen.path(), notebooks / chosen.notebook)
            port, token = free_port(), secrets.token_urlsafe(24)
            url = f"http://127.0.0.1:{port}"
            browser = _wants_browser() if open_browser is None else open_browser
            env = site.kernel_env(WORKBENCH_KBS_URL=site.broker_url, **kernel_search_path())
            log = workdir / "jupyterlab.log"
            with log.open("ab") as handle:
                process = subprocess.Popen(
                    [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
                     f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                     f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
                     f"--ServerApp.open_browser={browser}",
                     f"--LabApp.default_url=/lab/tree/{chosen.notebook}",
                     # Containers often run as root; JupyterLab refuses that unless told.
                     *(["--allow-root"] if os.geteuid() == 0 else [])],
                    env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=notebooks)
            try:
                _wait_until_up(process, url, token, log)
                print(f"JupyterLab is running {chosen.title} on a Confidential Python "
                      f"kernel:\n  {url}/lab/tree/{chosen.notebook}?token={token}\n"
                      f"key broker {site.broker_url}; working directory {workdir} (log: {log})\n"
                      "press Ctrl-C to stop", flush=True)
                process.wait()
                raise WorkbenchError(f"JupyterLab exited ({process.returncode}); see {log}")
            except KeyboardInterrupt:
                print("stopping JupyterLab and the key broker", flush=True)
                return 0
            finally:
                stop_process(process)
    finally:
        signal.signal(signal.SIGTERM, previous)
