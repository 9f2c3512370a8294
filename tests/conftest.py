"""Fixtures shared by every test folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own WORKBENCH_HOME, so no test reads the developer's state."""
    home = tmp_path_factory.mktemp("workbench-home")
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def demo_assets(tmp_path_factory: pytest.TempPathFactory):
    from workbench.demo.assets import build_assets

    return build_assets(tmp_path_factory.mktemp("demo-assets"), rows=569, seed=7)


@pytest.fixture
def workbench_cli():
    """Path of the installed `workbench` console script (tests run from the venv)."""
    script = Path(sys.executable).parent / "workbench"
    assert script.exists(), f"{script} missing: run `make install`"
    return str(script)
