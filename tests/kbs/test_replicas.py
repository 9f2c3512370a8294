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
