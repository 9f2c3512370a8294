"""The broker's OpenAPI description, generated from the routes (docs/kbs-openapi.json)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from workbench.kbs.app import create_app
from workbench.kbs.broker_key import load_or_create
from workbench.kbs.config import BrokerConfig
from workbench.kbs.evidence import EvidenceVerifier
from workbench.kbs.kek import KEK_BYTES, Kek
from workbench.kbs.service import Broker
from workbench.kbs.store import open_store

DOC_PATH = Path("docs") / "kbs-openapi.json"


def openapi_document() -> dict[str, Any]:
    """Routes do not depend on state, so a throwaway store describes every broker."""
    with tempfile.TemporaryDirectory() as scratch:
        store = open_store(f"sqlite:///{scratch}/openapi.db")
        try:
            kek = Kek(os.urandom(KEK_BYTES))
            broker = Broker(BrokerConfig(), store, kek, load_or_create(store, kek),
                            EvidenceVerifier())
            return create_app(broker, "x" * 32).openapi()
        finally:
            store.dispose()


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
