"""Fixtures: a hospital (a real broker on 127.0.0.1) that also published the CT slices and
the tissue model, and a Confidential Python kernel started against it (jupyter_client)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.demo.environment import Hospital, hospital
from workbench.demo.imaging import publish_imaging

# RunningKernel, the jupyter_client driver the kernel tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))


@pytest.fixture(scope="module")
def imaging_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("imaging-hospital")) as running:
        publish_imaging(running)
        yield running


@pytest.fixture(scope="module")
def imaging_kernel(imaging_site: Hospital, tmp_path_factory: pytest.TempPathFactory):
    from kernel_helpers import RunningKernel

    imaging_site.repin()  # the installed code may have changed since the policy was made
    kernel = RunningKernel(imaging_site.kernel_env(),
                           tmp_path_factory.mktemp("imaging-kernel") / "kernel.log")
    yield kernel
    kernel.shutdown()

