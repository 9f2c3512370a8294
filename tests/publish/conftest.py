"""Fixtures: one hospital for the session (a real broker on 127.0.0.1, the demo published
through the publish core, a kernel configuration), and the data owner's command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Kernels are started as tests/kernel starts them (RunningKernel, a real jupyter_client).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))

from publish_helpers import Owner

from workbench.demo.environment import Hospital, hospital


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("publish-hospital")) as running:
        yield running


@pytest.fixture(scope="session")
def owner_cli() -> str:
    """The installed `workbench` console script (like the workbench_cli fixture, for
    module-scoped fixtures too)."""
    script = Path(sys.executable).parent / "workbench"
    assert script.exists(), f"{script} missing: run `make install`"
    return str(script)


@pytest.fixture
def owner(site: Hospital, owner_cli: str, tmp_path: Path) -> Owner:
    return Owner(site, owner_cli, tmp_path)
