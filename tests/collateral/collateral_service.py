"""A collateral service over a test folder and stand-in servers, at a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collateral_server import CollateralServer

from workbench.attestation.collateral.cache import CollateralCache
from workbench.attestation.collateral.service import CollateralService
from workbench.attestation.collateral.sources import Sources

# Inside the validity of go-tdx-guest's recorded collateral (see tests/attestation's
# test_dcap_collateral): TCB info 2023-06-18..07-18, QE identity until 2023-07-08.
INSIDE = datetime(2023, 6, 20, tzinfo=UTC)


def make_service(folder: Path, server: CollateralServer | None = None, *, urls=None,
                 now: datetime = INSIDE, **kwargs) -> CollateralService:
    pcs_urls = urls if urls is not None else ((server.url,) if server else ())
    return CollateralService(CollateralCache(folder), Sources(pcs=tuple(pcs_urls),
                                                                kds=tuple(pcs_urls)),
                             clock=lambda: now, **kwargs)
