"""DELETE /admin/v0/resources/...: a key no kernel received can be taken back (how a failed
publish undoes its registration); a released one cannot, and the broker says why."""

from __future__ import annotations

import hashlib
import os

from kbs_helpers import session_for, sim_policy, unique


def test_a_never_released_resource_is_deleted_and_audited(broker, provider):
    path = unique("undo")
    key = os.urandom(32)
    added = broker.add_resource(path, key, sim_policy(provider))
    assert added["key_fingerprint"] == hashlib.sha256(key).hexdigest()[:16]
    with broker.admin() as admin:
        deleted = admin.delete(f"/resources/{path}")
        after = admin.get(f"/resources/{path}")
        records = admin.get("/audit", params={"kind": "admin", "limit": 1000}).json()
        verdict = admin.get("/audit/verify").json()
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert after.status_code == 404
    actions = [r["payload"]["action"] for r in records if r["payload"].get("resource") == path]
    assert actions == ["resource-add", "resource-delete"]
    assert verdict["ok"], verdict
    # The path is free again: a publish that is run again can register it anew.
    assert broker.add_resource(path, os.urandom(32), sim_policy(provider))["version"] == 1


def test_a_released_resource_is_refused_with_the_reason(broker, provider):
    path = unique("given")
    key = os.urandom(32)
    broker.add_resource(path, key, sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest([path])
        assert session.get_resource(path) == key
    with broker.admin() as admin:
        refused = admin.delete(f"/resources/{path}")
        still = admin.get(f"/resources/{path}")
        actions = [r["payload"]["action"]
                   for r in admin.get("/audit", params={"kind": "admin", "limit": 1000}).json()
                   if r["payload"].get("resource") == path]
    assert refused.status_code == 409
    assert refused.json()["type"].endswith(":Conflict")
    detail = refused.json()["detail"]
    assert f"resource {path} was released (audit record " in detail
    assert "cannot be deleted, only revoked ('kbs resource revoke')" in detail
    assert still.status_code == 200 and still.json()["status"] == "active"
    # The refused deletion left no record: its transaction was rolled back whole.
    assert actions == ["resource-add"]


def test_a_similar_path_released_does_not_block_deletion(broker, provider):
    # 'x_y' in a LIKE pattern would match 'xzy': the check compares paths exactly.
    stem = f"like{os.urandom(3).hex()}"
    released, other = f"{stem}xy/table-key/phi", f"{stem}_y/table-key/phi"
    broker.add_resource(released, os.urandom(32), sim_policy(provider))
    broker.add_resource(other, os.urandom(32), sim_policy(provider))
    with session_for(broker, provider) as session:
        session.attest([released])
        session.get_resource(released)
    with broker.admin() as admin:
        assert admin.delete(f"/resources/{other}").status_code == 200
        assert admin.delete(f"/resources/{released}").status_code == 409


def test_deleting_an_unknown_resource_is_404(broker):
    with broker.admin() as admin:
        response = admin.delete("/resources/no/table-key/such-thing")
    assert response.status_code == 404
    assert "resource no/table-key/such-thing not found" in response.json()["detail"]
