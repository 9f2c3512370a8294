"""The refusal raised when collateral cannot be had: it names the source and the reason."""

from __future__ import annotations

from workbench.attestation.verify.result import CHECK_COLLATERAL, EvidenceRejected


class CollateralRefused(EvidenceRejected):
    """Collateral unfetchable, expired or unusable; fail closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(CHECK_COLLATERAL, reason)
