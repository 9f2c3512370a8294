"""One collateral request: its path and query (the cache key) and how to read its answer."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlencode


@dataclass(frozen=True)
class CollateralRequest:
    """``kind`` says how the body is read (``tcb-info``, ``qe-identity``, ``crl``, ``cert``,
    ``chain``); ``chain_header`` names the response header carrying the signer's chain."""

    service: str  # "pcs" or "kds": which configured base URLs serve it
    kind: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    chain_header: str = ""

    @cached_property
    def key(self) -> str:
        """The exact request, independent of which base URL answers it."""
        return self.path + ("?" + urlencode(self.query) if self.query else "")
