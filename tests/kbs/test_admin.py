"""The admin API: no route without the token, and what each route does and refuses."""

from __future__ import annotations

import base64
import json
import os
import re

import httpx
import pytest
from kbs_helpers import ADMIN_TOKEN, session_for, sim_policy, unique

from workbench.brokerclient import BrokerError


def published_admin_routes(broker) -> set[tuple[str, str]]:
    """Every (method, path template) under /admin in the running broker's OpenAPI."""
    spec = httpx.get(f"{broker.url}/openapi.json").json()
    return {(method.upper(), path) for path, item in spec["paths"].items()
            if path.startswith("/admin/") for method in item}


def admin_routes(broker) -> list[tuple[str, str]]:
    return sorted((method, re.sub(r"\{[^}]+\}", "x", path))
                  for method, path in published_admin_routes(broker))


class _Unused:
    """admin_routes() only builds closures over these; no route is called here."""

    registry = approvals = store = None


def test_the_walk_covers_the_apps_admin_route_table(broker):
    from workbench.kbs.app import ADMIN_PREFIX
    from workbench.kbs.app import admin_routes as route_table

    # OpenAPI names a parameter without its convertor ({name:path} is {name} there).
    declared = {(r.method, ADMIN_PREFIX + re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path))
                for r in route_table(_Unused())}
    assert declared == published_admin_routes(broker)
    assert len(declared) >= 13


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token-wrong-token-wrong"},
    {"Authorization": f"Basic {base64.b64encode(ADMIN_TOKEN.encode()).decode()}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"},
])
def test_every_admin_route_refuses_without_the_right_token(broker, headers):
    routes = admin_routes(broker)
    assert routes
    with httpx.Client(base_url=broker.url, headers=headers) as client:
        for method, path in routes:
            body = {} if method in ("POST", "PUT") else None
            response = client.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["type"].endswith(":AdminUnauthorized")
            assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_admin_paths_also_need_the_token(broker):
    for path in ("/admin/v0/nothing", "/admin/v1/resources", "/admin"):
        assert httpx.get(f"{broker.url}{path}").status_code == 401


def test_malformed_admin_body_without_token_is_401_not_400(broker):
    response = httpx.post(f"{broker.url}/admin/v0/resources", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 401


def test_add_list_show_and_duplicate(broker, provider):
    path = unique("admin")
    info = broker.add_resource(path, os.urandom(32), sim_policy(provider),
                               require_approval=True, approval_timeout_s=60)
    assert info["version"] == 1 and info["require_approval"] and info["policy_id"]
    assert "key" not in info and "key_sealed" not in json.dumps(info)
    with broker.admin() as admin:
        assert path in [r["path"] for r in admin.get("/resources").json()]
        assert admin.get(f"/resources/{path}").json()["approval_timeout_s"] == 60
        again = admin.post("/resources", json={"path": path, "key": base64.b64encode(
            os.urandom(32)).decode(), "policy": sim_policy(provider)})
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


@pytest.mark.parametrize(("body", "kind", "reason"), [
    ({"path": "a/table-key/x", "key": base64.b64encode(b"short").decode(),
      "policy": {"id": "p"}}, "InvalidKey", "a table master key is 32 bytes"),
    ({"path": "a/file-keyset/main", "key": base64.b64encode(b"not json").decode(),
      "policy": {"id": "p"}}, "InvalidKey", "Tink keyset in JSON"),
    ({"path": "a/table-key/x", "key": "***", "policy": {"id": "p"}}, "InvalidKey",
     "key must be base64"),
    ({"path": "a/table-key/x", "key": base64.b64encode(bytes(32)).decode(),
      "policy": {"id": "p", "alow_simulation": True}}, "InvalidPolicy", "alow_simulation"),
    ({"path": "a/b", "key": base64.b64encode(bytes(32)).decode(), "policy": {"id": "p"}},
     "InvalidResourcePath", "repository/type/tag"),
    ({"path": "a/table-key/x", "key": "AAAA", "policy": {"id": "p"}, "extra": 1},
     "MalformedRequest", "extra"),
])
def test_add_refusals_name_the_problem(broker, body, kind, reason):
    with broker.admin() as admin:
        response = admin.post("/resources", json=body)
    assert response.status_code == 400
    assert response.json()["type"].endswith(":" + kind)
    assert reason in response.json()["detail"]


def test_rotate_releases_the_new_key(broker, provider):
    path = unique("rotate")
    old = os.urandom(32)
    broker.add_resource(path, old, sim_policy(provider))
    new = os.urandom(32)
    with broker.admin() as admin:
        rotated = admin.post(f"/resources/{path}/rotate",
                             json={"key": base64.b64encode(new).decode()}).json()
        generated = admin.post(f"/resources/{path}/rotate", json={}).json()
    assert (rotated["version"], generated["version"]) == (2, 3)
    with session_for(broker, provider) as session:
        session.attest([path])
        released = session.get_resource(path)
    assert released not in (old, new) and len(released) == 32


def test_rotate_of_a_keyset_needs_the_new_material(broker, provider):
    path = f"m-{os.urandom(3).hex()}/file-keyset/main"
    broker.add_resource(path, json.dumps({"key": []}).encode(), sim_policy(provider))
    with broker.admin() as admin:
        response = admin.post(f"/resources/{path}/rotate", json={})
    assert response.status_code == 400
    assert "give the new key material" in response.json()["detail"]


def test_revoke_twice_and_rotate_after_revoke(broker, provider):
    path = unique("gone")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with broker.admin() as admin:
        assert admin.post(f"/resources/{path}/revoke").json()["status"] == "revoked"
        twice = admin.post(f"/resources/{path}/revoke")
        rotate = admin.post(f"/resources/{path}/rotate", json={})
    assert twice.status_code == 409 and "already revoked" in twice.json()["detail"]
    assert rotate.status_code == 403 and "was revoked" in rotate.json()["detail"]


def test_policy_set_takes_effect_for_new_sessions(broker, provider):
    path = unique("policy")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    strict = sim_policy(provider, id="strict", allow_simulation=False)
    with broker.admin() as admin:
        updated = admin.put(f"/resources/{path}/policy", json={"policy": strict}).json()
        shown = admin.get(f"/resources/{path}/policy").json()
    assert updated["policy_id"] == "strict" and shown["policy"] == strict
    with session_for(broker, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert caught.value.kind == "PolicyDeny"


def test_unknown_resource_in_admin_calls(broker):
    with broker.admin() as admin:
        for method, suffix in (("GET", ""), ("POST", "/revoke"), ("GET", "/policy")):
            response = admin.request(method, f"/resources/no/table-key/such{suffix}")
            assert response.status_code == 404
            assert "resource no/table-key/such not found" in response.json()["detail"]


def test_approve_releases_and_decisions_are_final(broker, provider):
    path = unique("approve")
    key = os.urandom(32)
    broker.add_resource(path, key, sim_policy(provider), require_approval=True)
    with session_for(broker, provider) as session:
        session.attest([path])
        pending = session.fetch(path)
        with broker.admin() as admin:
            listed = admin.get("/approvals").json()
            item = next(a for a in listed if a["id"] == pending.request_id)
            assert item["kernel"]["kernel"]["tee"] == "simulated"
            assert item["kernel"]["verdict"] == "warning"
            assert admin.post(f"/approvals/{pending.request_id}/approve",
                              json={"reason": "IRB 42"}).json()["state"] == "approved"
            again = admin.post(f"/approvals/{pending.request_id}/deny", json={})
            missing = admin.post("/approvals/req-0000/approve", json={})
        assert session.get_resource(path) == key
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_deciding_after_the_deadline_is_refused(broker, provider):
    import time

    path = unique("late")
    broker.add_resource(path, os.urandom(32), sim_policy(provider), require_approval=True,
                        approval_timeout_s=1)
    with session_for(broker, provider) as session:
        session.attest([path])
        pending = session.fetch(path)
    time.sleep(1.2)
    with broker.admin() as admin:
        late = admin.post(f"/approvals/{pending.request_id}/approve", json={})
        state = admin.get(f"/approvals/{pending.request_id}").json()["state"]
    assert late.status_code == 409 and "timed out" in late.json()["detail"]
    assert state == "expired"


def test_admin_changes_are_audited(broker, provider):
    path = unique("audited")
    broker.add_resource(path, os.urandom(32), sim_policy(provider))
    with broker.admin() as admin:
        admin.post(f"/resources/{path}/rotate", json={})
        records = admin.get("/audit", params={"kind": "admin", "limit": 1000}).json()
        verdict = admin.get("/audit/verify").json()
    actions = [r["payload"]["action"] for r in records if r["payload"]["resource"] == path]
    assert actions == ["resource-add", "resource-rotate"]
    assert verdict["ok"], verdict
