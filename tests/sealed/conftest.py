"""Fixtures: one hospital (a real broker on 127.0.0.1, sealed assets, policy, catalog) for
the sealed-session tests, and Confidential Python kernels started through jupyter_client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sealed_helpers import Started, start

from workbench.demo.environment import Hospital, hospital


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture
def kernel(site: Hospital, tmp_path: Path) -> Iterator[Callable[..., Started]]:
    """Start kernels against the hospital; each is shut down after the test."""
    started: list[Started] = []

    def make(**env: str) -> Started:
        site.repin()
        one = start(site, tmp_path / f"kernel-{len(started)}.log", **env)
        started.append(one)
        return one

    yield make
    for one in started:
        one.stop()
