from __future__ import annotations

from pathlib import Path

import pytest

from workbench.demo.assets import PHI_COLUMNS
from workbench.sealing.files import seal_file
from workbench.sealing.keyring import Keyring
from workbench.sealing.table import seal_table


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "owner.keyring")


@pytest.fixture
def sealed_cohort(tmp_path: Path, keyring: Keyring, demo_assets) -> Path:
    out = tmp_path / "cohort.sealed.parquet"
    seal_table(demo_assets.cohort, out, protect=PHI_COLUMNS, keyring=keyring, dataset="cohort")
    return out


@pytest.fixture
def sealed_model(tmp_path: Path, keyring: Keyring, demo_assets) -> Path:
    out = tmp_path / "risk-model.sealed"
    seal_file(demo_assets.model, out, name="risk-model", keyring=keyring)
    return out
