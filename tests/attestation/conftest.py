"""Fixtures for the attestation tests: the real evidence in ../shared/vectors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

VECTORS = Path(__file__).parents[2].parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared folder of real SGX/TDX/SEV-SNP evidence (see its SOURCES.md)."""
    if not VECTORS.is_dir():
        pytest.skip(f"real evidence vectors not found at {VECTORS} (a clone without shared/)")
    return VECTORS


# The broker tests' helpers run a real `workbench kbs serve` (tests/kbs/kbs_helpers.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kbs"))
