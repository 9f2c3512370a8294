"""Fixtures: the hospital's broker, and Confidential Python kernels started by a stock
jupyter_client KernelManager (the provisioner makes it a client of the kernel's own key)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.demo.environment import Hospital, hospital

sys.path.insert(0, str(Path(__file__).parent))

from transport_kernels import KERNEL_NAME, Kernel


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
