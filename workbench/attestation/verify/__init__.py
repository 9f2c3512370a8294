"""Signatures, certificate chains to pinned roots, collateral and TCB status."""
