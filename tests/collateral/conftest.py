"""Fixtures: the PCS/KDS stand-in on 127.0.0.1 and a collateral service over a temp cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from collateral_server import VECTORS, CollateralServer, pcs_routes

from workbench.attestation.collateral.cache import CollateralCache
from workbench.attestation.collateral.service import CollateralService
from workbench.attestation.collateral.sources import Sources

# Inside the validity of go-tdx-guest's recorded collateral (see tests/attestation's
# test_dcap_collateral): TCB info 2023-06-18..07-18, QE identity until 2023-07-08.
INSIDE = datetime(2023, 6, 20, tzinfo=UTC)


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


def make_service(folder: Path, server: CollateralServer | None = None, *, urls=None,
                 now: datetime = INSIDE, **kwargs) -> CollateralService:
    pcs_urls = urls if urls is not None else ((server.url,) if server else ())
    return CollateralService(CollateralCache(folder), Sources(pcs=tuple(pcs_urls),
                                                                kds=tuple(pcs_urls)),
                             clock=lambda: now, **kwargs)
