"""Assemble the broker from its configuration and run it under uvicorn."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI

from workbench import __version__
from workbench.kbs import audit
from workbench.kbs.admin_token import server_token
from workbench.kbs.app import create_app
from workbench.kbs.broker_key import load_or_create
from workbench.kbs.config import BrokerConfig, from_json, to_json
from workbench.kbs.evidence import EvidenceVerifier
from workbench.kbs.kek import load_kek
from workbench.kbs.key_file import publish_keys
from workbench.kbs.service import Broker
from workbench.kbs.store import open_store
from workbench.kbs.witness import witness_for

log = logging.getLogger("workbench.kbs")
ENV_WORKER_CONFIG = "WORKBENCH_KBS_WORKER_CONFIG"


def collateral_service(config: BrokerConfig) -> Any:
    """The collateral service of ``config`` with its refresh thread, or None."""
    if not config.collateral_service:
        return None
    from workbench.attestation.collateral.refresh import Refresher
    from workbench.attestation.collateral.service import open_service

    providers = open_service(
        config.collateral_cache, pcs_urls=config.collateral_pcs_urls,
        kds_urls=config.collateral_kds_urls,
        refresh_ahead=timedelta(seconds=config.collateral_refresh_ahead_s))
    Refresher(providers.service, config.collateral_refresh_interval_s).start()
    return providers


def build(config: BrokerConfig) -> tuple[Broker, str]:
    """The broker and the admin token it accepts (both read from config/environment)."""
    store = open_store(config.db_url, synchronous=config.sqlite_synchronous, migrate=False)
    try:
        # Development conveniences (a generated KEK and admin token) only for local SQLite.
        dev_dir = store.path.parent if store.path is not None else None
        kek = load_kek(config.kek_file or None, dev_dir)
        # With the KEK: an upgrade that adds row MACs authenticates the rows it finds.
        authenticated = store.migrate(kek=kek)
        key = load_or_create(store, kek)
        if any(authenticated.values()):
            # Rows are authenticated as found, so say when and how many: a second such
            # record means the schema was rolled back and upgraded again.
            audit.record(store, key, "admin", {"action": "row-authentication",
                                               "rows": authenticated},
                         datetime.now(UTC))
        verifier = EvidenceVerifier(simulated_keys=config.simulated_platform_keys,
                                    collateral_dir=config.dcap_collateral_dir,
                                    collateral_service=collateral_service(config))
        broker = Broker(config, store, kek, key, verifier,
                        audit_keys=publish_keys(store, kek, config.db_url))
        broker.witness = witness_for(config.audit_witness, store, key, config.issuer_name,
                                     every=config.audit_checkpoint_every,
                                     interval_s=config.audit_checkpoint_interval_s,
                                     clock=broker.now)
        token = server_token(config.admin_token_file or None, dev_dir)
    except BaseException:
        store.dispose()
        raise
    return broker, token


def build_app(config: BrokerConfig, *, announce: bool = True) -> FastAPI:
    broker, token = build(config)
    if announce:
        broker.startup_record(__version__)
        log.info("key broker %s: store %s, token key %s, %d worker(s)", __version__,
                 config.db_url if config.db_url.startswith("sqlite") else "(server database)",
                 broker.key.kid, config.workers)
    return create_app(broker, token)


def worker_app() -> FastAPI:
    """Factory for each uvicorn worker process (the parent set everything up already)."""
    return build_app(from_json(os.environ[ENV_WORKER_CONFIG]), announce=False)


def serve(config: BrokerConfig) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {"host": config.host, "port": config.port, "log_level": config.log_level,
               "access_log": False, "server_header": False}
    if config.workers == 1:
        uvicorn.run(build_app(config), **options)
        return
    # Migrations, the dev KEK/token files and the broker key are created once, here, so
    # the workers only open what exists.
    broker, _ = build(config)
    broker.startup_record(__version__)
    broker.store.dispose()
    os.environ[ENV_WORKER_CONFIG] = to_json(config)
    uvicorn.run("workbench.kbs.server:worker_app", factory=True, workers=config.workers,
                **options)
