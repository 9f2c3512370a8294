"""Fixtures: a module-wide broker process and a simulated TEE it trusts (see kbs_helpers)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kbs_helpers import Broker, provider_for, running_broker

from workbench.attestation.tee.simulated import SimulatedProvider

# The load generator (benchmarks/loadgen.py) is shared with the benchmarks, not shipped.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for every module that does not need a store of its own (tests use
    fresh resource paths, so they do not see each other's resources)."""
    with running_broker(tmp_path_factory.mktemp("kbs")) as running:
        yield running


@pytest.fixture(scope="module")
def fixed_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp("measured-package")
    (package / "__init__.py").write_text("# the code a simulated test kernel 'runs'\n")
    return package


@pytest.fixture(scope="module")
def provider(broker: Broker, fixed_package: Path) -> SimulatedProvider:
    return provider_for(broker, fixed_package)


