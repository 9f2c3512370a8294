"""Analyst and group names are plain names (the alphabet of resource path parts), because a
name travels as a segment of the revoke route; names an older broker stored with '/', '?',
'#' or dots only stay revocable, from the API and the CLI. Against a real broker process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from kbs_helpers import ADMIN_TOKEN, Broker, running_broker

from workbench.kbs.adminclient import AdminClient
from workbench.sealed.certificate import fingerprint, jwk_of

RULE = "a name must be 1-128 letters, digits, '.', '-' or '_', starting with a letter or digit"


def _jwk() -> dict[str, str]:
    return jwk_of(ec.generate_private_key(ec.SECP256R1()).public_key())


def _admin_records(broker) -> list[dict]:
    with broker.admin() as admin:
        return admin.get("/audit", params={"kind": "admin", "limit": 1000}).json()


@pytest.mark.parametrize("name", ["oncology/alice", "alice?x", "bob#2", "..", ".", "-x",
                                  "carol\n", "", "a" * 129, "d\u00e9sir\u00e9e"])
def test_an_analyst_name_outside_the_alphabet_is_refused(broker, name: str) -> None:
    with broker.admin() as admin:
        response = admin.post("/analysts", json={"name": name, "public_key": _jwk()})
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith(":MalformedRequest")
    assert response.json()["detail"] == f"analyst name: {name!r} is not a plain name: {RULE}"
    assert all(r["payload"].get("analyst") != name for r in _admin_records(broker))


def test_an_analyst_group_outside_the_alphabet_is_refused(broker) -> None:
    name = f"erin-{uuid.uuid4().hex[:6]}"
    with broker.admin() as admin:
        response = admin.post("/analysts", json={"name": name, "public_key": _jwk(),
                                                 "groups": ["oncology", "cardio/logy"]})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == \
            f"analyst groups: 'cardio/logy' is not a plain name: {RULE}"
        assert name not in [a["name"] for a in admin.get("/analysts").json()]
        fine = admin.post("/analysts", json={"name": f"{name}.b_c", "public_key": _jwk(),
                                             "groups": ["onco.logy-2_x"]})
    assert fine.status_code == 201, fine.text


def test_a_resource_path_with_a_trailing_newline_is_refused(broker) -> None:
    # The part pattern ends in '$', which matches before a final newline.
    with broker.admin() as admin:
        response = admin.post("/resources", json={"path": "a/table-key/phi\n", "key": "AA==",
                                                  "policy": {"id": "p"}})
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith(":InvalidResourcePath")
    assert "tag 'phi\\n' must be 1-128 letters" in response.json()["detail"]


LEGACY = ["oncology/alice", "alice?x", "bob#2", "..", ".", "50%", "a b"]


def _store_legacy(broker, name: str) -> str:
    """What a broker before this rule may hold: the row as that broker wrote it."""
    key = _jwk()
    with sqlite3.connect(broker.db, timeout=30) as db:
        db.execute("INSERT INTO analysts (name, fingerprint, public_jwk, groups, added_at) "
                   "VALUES (?, ?, ?, '[]', '2026-01-01T00:00:00.000000+00:00')",
                   (name, fingerprint(key), json.dumps(key, sort_keys=True)))
    db.close()
    return fingerprint(key)


@pytest.fixture(scope="module")
def legacy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A store of its own: the shared broker's may hold these names from other tests."""
    with running_broker(tmp_path_factory.mktemp("legacy-names")) as running:
        yield running


@pytest.mark.parametrize("name", LEGACY)
def test_a_stored_name_outside_the_alphabet_is_revoked_by_the_admin_client(legacy_broker,
                                                                           name: str) -> None:
    broker = legacy_broker
    printed = _store_legacy(broker, name)
    with AdminClient(broker.url, ADMIN_TOKEN) as admin:
        revoked = admin.revoke_analyst(name)
        assert revoked["name"] == name and revoked["revoked_at"]
        [row] = [a for a in admin.analysts() if a["name"] == name]
    assert row["revoked_at"] == revoked["revoked_at"]
    assert ("analyst-revoke", printed) in [
        (r["payload"]["action"], r["payload"]["fingerprint"]) for r in _admin_records(broker)
        if r["payload"].get("analyst") == name]


def test_stored_names_outside_the_alphabet_are_revoked_from_the_command_line(
        tmp_path, workbench_cli: str, tmp_path_factory) -> None:
    token = tmp_path / "admin-token"
    token.write_text(ADMIN_TOKEN)
    with running_broker(tmp_path_factory.mktemp("legacy-names-cli")) as broker:
        for name in LEGACY:
            _store_legacy(broker, name)
            done = subprocess.run([workbench_cli, "kbs", "analyst", "revoke", name, "--url",
                                   broker.url, "--admin-token-file", str(token)],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith(f"revoked analyst {name} at ")
        with broker.admin() as admin:
            listed = {a["name"]: a["revoked_at"] for a in admin.get("/analysts").json()}
    assert all(listed[name] for name in LEGACY), listed
