"""Fixtures: the hospital's broker, and Confidential Python kernels started by a stock
jupyter_client KernelManager (the provisioner makes it a client of the kernel's own key)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from workbench.demo.environment import Hospital, hospital

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))
KERNEL_NAME = "confidential-python"
READY_TIMEOUT_S = 120


class Kernel:
    """A kernel and a client from its manager, as any jupyter_client user starts one."""

    def __init__(self, env: dict[str, str], log: Path, name: str = KERNEL_NAME,
                 **manager_options: object) -> None:
        self.manager = KernelManager(kernel_name=name, **manager_options)
        # Open as long as the kernel lives: a restart launches with the same arguments.
        self._log_handle = log.open("ab")
        self.manager.start_kernel(env={**env, "JUPYTER_PATH": str(ROOT)},
                                  stdout=self._log_handle, stderr=self._log_handle)
        self.log = log
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=READY_TIMEOUT_S)

    def run(self, code: str) -> str:
        """Execute ``code``; its stdout (fails on an error)."""
        out: list[str] = []

        def output(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append(f"ERROR {msg['content']['ename']}: {msg['content']['evalue']}")

        reply = self.client.execute_interactive(code, timeout=READY_TIMEOUT_S,
                                                output_hook=output)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
        self._log_handle.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="session")
def start_kernel(site: Hospital, tmp_path_factory: pytest.TempPathFactory):
    started: list[Kernel] = []

    def start(name: str = KERNEL_NAME, manager_options: dict | None = None, **env: str
              ) -> Kernel:
        site.repin()
        log = tmp_path_factory.mktemp("kernel") / "kernel.log"
        kernel = Kernel(site.kernel_env(WORKBENCH_KBS_URL=site.broker_url, **env), log, name,
                        **(manager_options or {}))
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        if kernel.manager.has_kernel:
            kernel.stop()


@pytest.fixture(scope="session")
def kernel(start_kernel) -> Kernel:
    """One confidential kernel shared by the tests that only look at it."""
    return start_kernel()


@pytest.fixture(scope="session")
def plain_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JUPYTER_PATH", None)
    return env
