"""The broker's settings: defaults, an optional TOML/JSON file, then command-line overrides.

Every setting is one row of ``SETTINGS`` (name, type, default, meaning), so the config file
format, the validation and the documentation cannot drift apart.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from workbench.errors import InputError, about
from workbench.home import workbench_home
from workbench.protocol.rcar import SUPPORTED_TEES

# Settings held as tuples (lists in files and in the JSON handed to worker processes).
_TUPLES = ("simulated_platform_keys", "allowed_tees", "collateral_pcs_urls",
           "collateral_kds_urls")


def default_state_dir() -> Path:
    return workbench_home() / "kbs"


def default_db_url() -> str:
    return f"sqlite:///{default_state_dir() / 'kbs.db'}"


@dataclass(frozen=True)
class BrokerConfig:
    db: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    # Seconds a challenge nonce stays usable; single use either way.
    nonce_ttl_s: int = 300
    # Seconds an attested session may fetch resources (covers approval waits).
    session_ttl_s: int = 1800
    token_lifetime_s: int = 300
    # Bodies above this are refused with 413 before any parsing.
    max_body_bytes: int = 256 * 1024
    approval_timeout_s: int = 900
    issuer: str = ""
    # PEM files of simulated-TEE platform keys to trust; empty = the local development key.
    simulated_platform_keys: tuple[str, ...] = ()
    # RCAR tee names the broker opens sessions for; empty = every one it can verify.
    allowed_tees: tuple[str, ...] = ()
    dcap_collateral_dir: str = ""
    # PCS-compatible (PCCS, THIM, Intel PCS) and KDS-compatible base URLs, tried in order.
    collateral_pcs_urls: tuple[str, ...] = ()
    collateral_kds_urls: tuple[str, ...] = ()
    collateral_cache_dir: str = ""
    collateral_refresh_ahead_s: int = 7 * 24 * 3600
    collateral_refresh_interval_s: int = 3600
    # Policy used for the attest token when the client names no resources.
    attestation_policy: str = ""
    kek_file: str = ""
    admin_token_file: str = ""
    # SQLite "synchronous": NORMAL survives a killed process; FULL also survives power loss.
    sqlite_synchronous: str = "NORMAL"
    cookie_secure: bool = False
    log_level: str = "info"
    # Server processes; each keeps its own caches, the store is shared (SQLite or server DB).
    workers: int = 1
    # JupyterHub REST API (e.g. https://hub.example/hub/api) that vouches for identity tokens;
    # empty: no identity is checked and resources restricted to users are refused.
    hub_api_url: str = ""
    identity_cache_s: int = 30
    identity_timeout_s: int = 5
    # Where signed audit checkpoints are pushed (a directory or an http(s) URL); empty: none.
    audit_witness: str = ""
    audit_checkpoint_every: int = 1000
    audit_checkpoint_interval_s: int = 300
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.db or default_db_url()

    @property
    def collateral_service(self) -> bool:
        return bool(self.collateral_pcs_urls or self.collateral_kds_urls
                    or self.collateral_cache_dir)

    @property
    def collateral_cache(self) -> str:
        from workbench.attestation.collateral.service import default_cache_dir

        return self.collateral_cache_dir or str(default_cache_dir())

    @property
    def issuer_name(self) -> str:
        return self.issuer or f"http://{self.host}:{self.port}"


# name -> (type, meaning); the type converts and validates file values.
SETTINGS: dict[str, tuple[type, str]] = {
    "db": (str, "SQLAlchemy URL of the store (default: SQLite under $WORKBENCH_HOME/kbs)"),
    "host": (str, "address to listen on"),
    "port": (int, "TCP port"),
    "nonce_ttl_s": (int, "lifetime of a challenge nonce in seconds"),
    "session_ttl_s": (int, "lifetime of an attested session in seconds"),
    "token_lifetime_s": (int, "lifetime of the EAR attestation token in seconds"),
    "max_body_bytes": (int, "largest accepted request body"),
    "approval_timeout_s": (int, "default wait for a human approval before refusing"),
    "issuer": (str, "the 'iss' of issued tokens (default: the listening URL)"),
    "simulated_platform_keys": (list, "PEM public keys of trusted simulated-TEE platforms"),
    "allowed_tees": (list, "RCAR tee names sessions may be opened for (e.g. [\"az-snp-vtpm\", "
                           "\"snp\"]); empty: every TEE the broker verifies"),
    "dcap_collateral_dir": (str, "directory of Intel PCS collateral for SGX/TDX TCB status "
                                 "(offline; not together with the collateral service)"),
    "collateral_pcs_urls": (list, "PCS v4-compatible base URLs (PCCS, Azure THIM, "
                                  "https://api.trustedservices.intel.com), tried in order"),
    "collateral_kds_urls": (list, "AMD KDS-compatible base URLs (https://kdsintf.amd.com or "
                                  "a cache), tried in order; set: AMD CRLs are checked"),
    "collateral_cache_dir": (str, "collateral cache shared by broker processes (default: "
                                  "$WORKBENCH_HOME/kbs/collateral when a URL is set)"),
    "collateral_refresh_ahead_s": (int, "renew cached collateral this many seconds before "
                                        "its nextUpdate"),
    "collateral_refresh_interval_s": (int, "seconds between background refresh rounds"),
    "attestation_policy": (str, "policy JSON for tokens of sessions naming no resource"),
    "kek_file": (str, "file holding the 32-byte key-encryption key (raw or base64)"),
    "admin_token_file": (str, "file holding the admin bearer token"),
    "sqlite_synchronous": (str, "SQLite synchronous pragma: NORMAL or FULL"),
    "cookie_secure": (bool, "mark the session cookie Secure (set when serving behind TLS)"),
    "log_level": (str, "uvicorn log level"),
    "workers": (int, "server processes (one per core is a good start)"),
    "hub_api_url": (str, "JupyterHub REST API URL that resolves identity tokens "
                         "(GET {hub_api_url}/user); empty: users are not checked"),
    "identity_cache_s": (int, "seconds a resolved identity token is reused"),
    "identity_timeout_s": (int, "seconds one identity lookup at the hub may take"),
    "audit_witness": (str, "directory or http(s) URL that receives a signed audit "
                           "checkpoint every audit_checkpoint_every records and every "
                           "audit_checkpoint_interval_s seconds; empty: none"),
    "audit_checkpoint_every": (int, "records between checkpoints pushed to the witness"),
    "audit_checkpoint_interval_s": (int, "seconds between checkpoints of the head pushed to "
                                         "the witness"),
}


def _coerce(name: str, value: Any, source: str) -> Any:
    kind, _ = SETTINGS[name]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(about(source, f"'{name}' must be a list of strings"))
        return tuple(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InputError(about(source, f"'{name}' must be a positive integer"))
    if kind is not int and not isinstance(value, kind):
        raise InputError(about(source, f"'{name}' must be a {kind.__name__}"))
    return value


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> BrokerConfig:
    """Defaults, then ``path`` (TOML or JSON), then non-None ``overrides``."""
    values: dict[str, Any] = {}
    if path:
        source = str(path)
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise InputError(about(source, f"cannot read config ({err.strerror})")) from err
        try:
            data = json.loads(raw) if source.endswith(".json") else tomllib.loads(raw.decode())
        except (ValueError, UnicodeDecodeError) as err:
            raise InputError(about(source, f"not valid TOML/JSON ({err})")) from err
        data = data.get("kbs", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise InputError(about(source, "config must be a table of settings"))
        unknown = sorted(set(data) - set(SETTINGS))
        if unknown:
            raise InputError(about(source, f"unknown setting(s): {', '.join(unknown)}"))
        values = {k: _coerce(k, v, source) for k, v in data.items()}
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    config = replace(BrokerConfig(), **values)
    if config.workers < 1 or config.port < 0:
        raise InputError("workers must be at least 1 and port not negative")
    if config.sqlite_synchronous.upper() not in ("NORMAL", "FULL"):
        raise InputError("sqlite_synchronous must be NORMAL or FULL")
    if config.dcap_collateral_dir and (config.collateral_pcs_urls
                                       or config.collateral_cache_dir):
        raise InputError("dcap_collateral_dir and the collateral service (collateral_pcs_urls, "
                         "collateral_cache_dir) are exclusive: use one source of Intel "
                         "collateral")
    unknown = sorted(set(config.allowed_tees) - set(SUPPORTED_TEES))
    if unknown:
        raise InputError(f"allowed_tees: {', '.join(unknown)} is not a TEE this broker "
                         f"verifies ({', '.join(SUPPORTED_TEES)})")
    return config


def to_json(config: BrokerConfig) -> str:
    values = {name: getattr(config, name) for name in SETTINGS}
    for name in _TUPLES:
        values[name] = list(getattr(config, name))
    return json.dumps(values)


def from_json(text: str) -> BrokerConfig:
    values = json.loads(text)
    for name in _TUPLES:
        values[name] = tuple(values[name])
    return replace(BrokerConfig(), **values)


def describe_settings() -> list[tuple[str, str, Any]]:
    defaults = {f.name: getattr(BrokerConfig(), f.name) for f in fields(BrokerConfig)}
    return [(name, meaning, defaults[name]) for name, (_, meaning) in SETTINGS.items()]
