"""Fixtures: the PCS/KDS stand-in on 127.0.0.1 and a collateral service over a temp cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from collateral_server import VECTORS, CollateralServer, pcs_routes


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(f"real evidence vectors not found at {VECTORS} (a clone without shared/)")
    return VECTORS


@pytest.fixture
def pcs(vectors):
    server = CollateralServer(pcs_routes())
    yield server
    server.stop()


@pytest.fixture
def tdx_quote(vectors) -> bytes:
    return (vectors / "tdx" / "trustee-quote-v4.dat").read_bytes()
