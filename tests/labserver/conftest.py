"""Fixtures: a Jupyter server (pytest-jupyter) with the workbench.labserver extension that
trusts one broker key, and a simulated TEE measuring a small fixed package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jwcrypto.jwk import JWK
from pytest_jupyter.jupyter_server import *  # noqa: F403 (jp_fetch, jp_serverapp, hooks)

from workbench.attestation.tee.simulated import SimulatedProvider


@pytest.fixture(scope="session")
def fixed_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp("measured-package")
    (package / "__init__.py").write_text("# the code a simulated test kernel 'runs'\n")
    return package


@pytest.fixture
def provider(fixed_package: Path) -> SimulatedProvider:
    # Platform key under this test's WORKBENCH_HOME: the server trusts that one by default.
    return SimulatedProvider(package_dir=fixed_package, kernels_dir=fixed_package / "none")


@pytest.fixture(scope="session")
def broker_key() -> JWK:
    return JWK.generate(kty="EC", crv="P-256")


@pytest.fixture
def broker_key_file(tmp_path: Path, broker_key: JWK) -> Path:
    path = tmp_path / "broker-jwks.json"
    path.write_text(json.dumps({"keys": [broker_key.export_public(as_dict=True)]}))
    return path


@pytest.fixture
def lab_config() -> dict[str, Any]:
    """Extra WorkbenchLab settings a test wants (merged into jp_server_config)."""
    return {}


@pytest.fixture
def jp_server_config(broker_key_file: Path, lab_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"workbench.labserver": True},
            "allow_unauthenticated_access": False,
        },
        "WorkbenchLab": {"broker_public_keys": [str(broker_key_file)], **lab_config},
    }
