"""The store on disk: file modes, migrations, secrets sealed under the KEK, startup refusals."""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass

import pytest
from kbs_helpers import running_broker, sim_policy, unique
from sqlalchemy import text

from workbench.cli import main
from workbench.errors import InputError
from workbench.kbs.config import load_config
from workbench.kbs.kek import KEK_BYTES, Kek, load_kek
from workbench.kbs.store import open_store


def test_store_file_is_private_and_in_wal_mode(tmp_path):
    db = tmp_path / "state" / "kbs.db"
    store = open_store(f"sqlite:///{db}")
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    store.dispose()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert version == "0006"


def test_migrations_are_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'kbs.db'}"
    for _ in range(3):
        store = open_store(url)
        with store.read() as conn:
            head = conn.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar()
        store.dispose()
        assert head == 0


def test_key_material_is_not_stored_in_the_clear(tmp_path, fixed_package):
    from kbs_helpers import provider_for

    marker = b"PLAINTEXT-KEY-MARKER-0123456789!"
    assert len(marker) == 32
    with running_broker(tmp_path) as broker:
        provider = provider_for(broker, fixed_package)
        broker.add_resource(unique("secret"), marker, sim_policy(provider))
        broker.stop()
        raw = b"".join(p.read_bytes() for p in broker.db.parent.glob("kbs.db*"))
        assert marker not in raw
        assert base64.b64encode(marker) not in raw
        kek = (broker.home / "kbs" / "kek.key")
        assert stat.S_IMODE(kek.stat().st_mode) == 0o600
        assert marker not in broker.log.read_bytes()


@dataclass
class Served:
    returncode: int
    stderr: str


@pytest.fixture
def serve(capsys, monkeypatch):
    """`workbench kbs serve` in this process: every case here fails before listening."""

    def run(tmp_path, *args, env=None) -> Served:
        monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = main(["kbs", "serve", "--port", "9", *args])
        return Served(code, capsys.readouterr().err)

    return run


def test_wrong_kek_refuses_to_start(tmp_path, serve):
    db = f"sqlite:///{tmp_path / 'kbs.db'}"
    first = base64.b64encode(os.urandom(KEK_BYTES)).decode()
    store = open_store(db)
    from workbench.kbs.broker_key import load_or_create

    load_or_create(store, Kek(base64.b64decode(first)))
    store.dispose()
    result = serve(tmp_path, "--db", db, env={
        "WORKBENCH_KBS_KEK": base64.b64encode(os.urandom(KEK_BYTES)).decode(),
        "WORKBENCH_KBS_ADMIN_TOKEN": "t" * 32})
    assert result.returncode == 1
    assert "sealed under a different key-encryption key" in result.stderr


def test_kek_file_of_the_wrong_size_is_refused(tmp_path):
    bad = tmp_path / "kek"
    bad.write_bytes(b"too short")
    with pytest.raises(InputError, match="must be 32 raw bytes or their base64"):
        load_kek(str(bad), None)


def test_server_database_needs_an_explicit_kek(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_KBS_KEK", raising=False)
    monkeypatch.delenv("WORKBENCH_KBS_KEK_FILE", raising=False)
    with pytest.raises(InputError, match="no key-encryption key"):
        load_kek(None, None)


def test_unknown_database_driver_is_named(tmp_path, serve):
    result = serve(tmp_path, "--db", "postgresql+nodriver://u@h/db")
    assert result.returncode == 2
    assert "postgresql+nodriver://u@h/db: database driver not installed" in result.stderr


def test_config_file_is_validated(tmp_path):
    config = tmp_path / "kbs.json"
    config.write_text(json.dumps({"nonce_ttl_s": 0}))
    with pytest.raises(InputError, match="'nonce_ttl_s' must be a positive integer"):
        load_config(config)
    config.write_text(json.dumps({"nonce_tll_s": 5}))
    with pytest.raises(InputError, match="unknown setting"):
        load_config(config)
    toml = tmp_path / "kbs.toml"
    toml.write_text('[kbs]\nport = 9999\nsimulated_platform_keys = ["a.pem"]\n')
    loaded = load_config(toml, {"host": "::1"})
    assert (loaded.port, loaded.host, loaded.simulated_platform_keys) == \
        (9999, "::1", ("a.pem",))


def test_serve_reports_a_bad_config_file(tmp_path, serve):
    config = tmp_path / "kbs.toml"
    config.write_text("port = [")
    result = serve(tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"workbench: error: {config}: not valid TOML/JSON")
