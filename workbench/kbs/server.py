"""Assemble the broker from its configuration and run it under uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from workbench import __version__
from workbench.kbs.admin_token import server_token
from workbench.kbs.app import create_app
from workbench.kbs.broker_key import load_or_create
from workbench.kbs.config import BrokerConfig
from workbench.kbs.evidence import EvidenceVerifier
from workbench.kbs.kek import load_kek
from workbench.kbs.service import Broker
from workbench.kbs.store import open_store

log = logging.getLogger("workbench.kbs")


def build(config: BrokerConfig) -> tuple[Broker, str]:
    """The broker and the admin token it accepts (both read from config/environment)."""
    store = open_store(config.db_url, synchronous=config.sqlite_synchronous)
    # Development conveniences (a generated KEK and admin token) only for a local SQLite file.
    dev_dir = store.path.parent if store.path is not None else None
    kek = load_kek(config.kek_file or None, dev_dir)
    key = load_or_create(store, kek)
    verifier = EvidenceVerifier(simulated_keys=config.simulated_platform_keys,
                                collateral_dir=config.dcap_collateral_dir)
    broker = Broker(config, store, kek, key, verifier)
    token = server_token(config.admin_token_file or None, dev_dir)
    return broker, token


def build_app(config: BrokerConfig) -> FastAPI:
    broker, token = build(config)
    broker.startup_record(__version__)
    log.info("key broker %s: store %s, token key %s", __version__,
             config.db_url if store_is_local(config) else "(server database)", broker.key.kid)
    return create_app(broker, token)


def store_is_local(config: BrokerConfig) -> bool:
    return config.db_url.startswith("sqlite")


def serve(config: BrokerConfig) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                access_log=False, server_header=False)
