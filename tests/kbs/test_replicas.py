"""Two broker processes on one store, as replicas behind a load balancer would run."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from kbs_helpers import Broker, free_port, provider_for, session_for, sim_policy

from workbench.brokerclient import BrokerError


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, fixed_package):
    from kbs_helpers import make_broker

    base = tmp_path_factory.mktemp("replicas")
    first = make_broker(base).start()
    second = Broker(home=first.home, port=free_port(), config=first.config,
                    log=base / "second.log", env=first.env).start()
    try:
        yield first, second, provider_for(first, fixed_package)
    finally:
        second.stop()
        first.stop()


def test_a_session_attested_on_one_replica_is_served_by_the_other(replicas):
    first, second, provider = replicas
    key = os.urandom(32)
    first.add_resource("shared/table-key/phi", key, sim_policy(provider))
    with session_for(first, provider) as session:
        session.attest(["shared/table-key/phi"])
        cookie = session._http.cookies["kbs-session-id"]
        session.get_resource("shared/table-key/phi")
    with httpx.Client(base_url=second.url, cookies={"kbs-session-id": cookie}) as other:
        response = other.get("/kbs/v0/resource/shared/table-key/phi")
    # The second replica has no cache entry: it re-verified the stored evidence itself.
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}


def test_a_policy_changed_on_one_replica_binds_the_other_at_once(replicas, workbench_cli):
    first, second, provider = replicas
    first.add_resource("changing/table-key/phi", os.urandom(32), sim_policy(provider))
    with session_for(first, provider) as session:
        session.attest(["changing/table-key/phi"])
        session.get_resource("changing/table-key/phi")  # the first replica caches the row
        strict = sim_policy(provider, id="strict", allow_simulation=False)
        with second.admin() as admin:
            assert admin.put("/resources/changing/table-key/phi/policy",
                             json={"policy": strict}).status_code == 200
        with pytest.raises(BrokerError) as caught:
            session.get_resource("changing/table-key/phi")
    assert caught.value.kind == "PolicyDeny"
    assert "policy 'strict' refuses" in str(caught.value)
    verified = subprocess.run([workbench_cli, "audit", "verify", "--db", first.db_url],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stderr


def _records(broker: Broker, kind: str, path: str) -> list[dict]:
    with broker.admin() as admin:
        records = admin.get("/audit", params={"kind": kind, "limit": 1000}).json()
    return [r["payload"] for r in records if r["payload"].get("resource") == path]


def test_a_replica_refuses_on_the_policy_as_it_is_now(replicas, tmp_path):
    """The second replica cached the row when it refused; the owner's new policy, set on
    the first, is what the second judges the next request by (not its cached refusal)."""
    first, second, provider = replicas
    upgraded = tmp_path / "v2"
    upgraded.mkdir()
    (upgraded / "__init__.py").write_text("# the kernel, version 2\n")
    v2 = provider_for(first, upgraded)
    path = "upgraded/table-key/phi"
    key = os.urandom(32)
    first.add_resource(path, key, sim_policy(provider), require_approval=True)
    with session_for(second, v2) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert caught.value.kind == "PolicyDeny"
    assert "is not a reference value of the policy" in str(caught.value)
    with first.admin() as admin:
        assert admin.put(f"/resources/{path}/policy", json={
            "policy": sim_policy(v2, id="v2"), "require_approval": False}).status_code == 200
    with session_for(second, v2) as session:
        session.attest([path])
        assert session.get_resource(path) == key
    [release] = _records(first, "release", path)
    assert release["policy_id"] == "v2" and release["approval"] is None
    assert len(_records(first, "refusal", path)) == 1


def test_a_replica_asks_for_no_approval_the_owner_switched_off(replicas):
    first, second, provider = replicas
    path = "gated/table-key/phi"
    key = os.urandom(32)
    first.add_resource(path, key, sim_policy(provider), require_approval=True)
    waiting = session_for(second, provider)
    waiting.attest([path])
    request = waiting.fetch(path).request_id  # the second replica caches the gated row
    with first.admin() as admin:
        assert admin.put(f"/resources/{path}/policy", json={
            "policy": sim_policy(provider), "require_approval": False}).status_code == 200
    with session_for(second, provider) as session:
        session.attest([path])
        assert session.fetch(path) == key  # no new request, at once
    with waiting:
        assert waiting.fetch(path) == key  # the waiting request is moot
    with first.admin() as admin:
        requests = [a["id"] for a in admin.get("/approvals", params={"state": "all"}).json()
                    if a["resource"] == path]
    assert requests == [request]
    assert len(_records(first, "pending", path)) == 1
    assert len(_records(first, "release", path)) == 2


def test_a_replica_releases_a_resource_deleted_and_added_again(replicas):
    """A refusal from a cached revoked row: the path now holds a new resource."""
    first, second, provider = replicas
    path = "readded/table-key/phi"
    first.add_resource(path, os.urandom(32), sim_policy(provider))
    with first.admin() as admin:
        assert admin.post(f"/resources/{path}/revoke").status_code == 200
    with session_for(second, provider) as session:
        session.attest([path])
        with pytest.raises(BrokerError) as caught:
            session.get_resource(path)
    assert caught.value.kind == "ResourceRevoked"
    with first.admin() as admin:
        assert admin.delete(f"/resources/{path}").status_code == 200
    key = os.urandom(32)
    first.add_resource(path, key, sim_policy(provider))
    with session_for(second, provider) as session:
        session.attest([path])
        assert session.get_resource(path) == key
