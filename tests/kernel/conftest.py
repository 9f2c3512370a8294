"""Fixtures: one hospital (a real broker on 127.0.0.1, sealed assets, policy, catalog) for
the whole kernel test session, and kernels started against it through jupyter_client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_helpers import RunningKernel

from workbench.demo.environment import Hospital, hospital


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="session")
def start_kernel(site: Hospital, tmp_path_factory: pytest.TempPathFactory):
    started: list[RunningKernel] = []

    def start(**env: str) -> RunningKernel:
        # While other work edits the tree, the installed code (the simulated measurement)
        # can change during a session; the hospital pins what the kernel will run.
        site.repin()
        log = tmp_path_factory.mktemp("kernel") / "kernel.log"
        kernel = RunningKernel(site.kernel_env(**env), log)
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.shutdown()


@pytest.fixture(scope="module")
def kernel(start_kernel) -> RunningKernel:
    """A kernel with no frontend (like nbclient), shared by a module's tests."""
    return start_kernel()
