"""The command line (admin commands, kbs-client-like get-resource) and BrokerKeySource."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
import time

import pandas as pd
import pytest
from kbs_helpers import ADMIN_TOKEN, sim_policy, unique

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.brokerclient import BrokerKeySource
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeyUnavailable
from workbench.sealing.table import open_table, seal_table


def cli(workbench_cli, broker, *args, home=None, timeout=60):
    env = {**broker.env, "WORKBENCH_HOME": str(home or broker.home),
           "WORKBENCH_KBS_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run([workbench_cli, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def checkout_policy(broker) -> dict:
    """A policy pinning this checkout's measurement, as `get-resource` measures it."""
    measurement = SimulatedProvider(home=broker.home).measurement().measurement
    return {"id": "this-checkout", "allowed_tee": ["simulated"], "allow_simulation": True,
            "reference_values": {"simulated": {"measurement": measurement}}}


@pytest.fixture
def installed_policy(broker, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(checkout_policy(broker)))
    return path


def get_resource_cli(workbench_cli, broker, path, *args, timeout=60):
    """Run get-resource; re-pin and retry if the checkout changed between pin and run.

    The simulated TEE measures this source tree, which other work may be editing while the
    tests run; a changed tree is refused (correctly) by the measurement rule.
    """
    for _ in range(3):
        result = cli(workbench_cli, broker, "kbs", "get-resource", "--url", broker.url, path,
                     *args, timeout=timeout)
        if "simulated.measurement" not in result.stderr:
            return result
        with broker.admin() as admin:
            admin.put(f"/resources/{path}/policy", json={"policy": checkout_policy(broker)})
    return result


def test_admin_cli_add_list_show_rotate_revoke(workbench_cli, broker, installed_policy,
                                               tmp_path):
    key = tmp_path / "key.bin"
    key.write_bytes(os.urandom(32))
    path = unique("cli")
    added = cli(workbench_cli, broker, "kbs", "resource", "add", path, "--file", str(key),
                "--policy", str(installed_policy), "--url", broker.url)
    assert added.returncode == 0, added.stderr
    assert f"added {path}  active  v1  32 bytes  policy this-checkout" in added.stdout
    listed = cli(workbench_cli, broker, "kbs", "resource", "list", "--url", broker.url, "--json")
    assert path in [r["path"] for r in json.loads(listed.stdout)]
    shown = cli(workbench_cli, broker, "kbs", "policy", "show", path, "--url", broker.url)
    assert json.loads(shown.stdout)["policy"]["id"] == "this-checkout"
    rotated = cli(workbench_cli, broker, "kbs", "resource", "rotate", path, "--url", broker.url)
    assert "v2" in rotated.stdout
    revoked = cli(workbench_cli, broker, "kbs", "resource", "revoke", path, "--url", broker.url)
    assert "key material destroyed" in revoked.stdout
    audit = cli(workbench_cli, broker, "kbs", "audit", "--kind", "admin", "--url", broker.url)
    assert "resource-revoke" in audit.stdout


def test_admin_cli_errors_are_one_line(workbench_cli, broker, tmp_path):
    bad = tmp_path / "policy.json"
    bad.write_text('{"id": "x", "allow_simulaton": true}')
    key = tmp_path / "key.bin"
    key.write_bytes(os.urandom(32))
    result = cli(workbench_cli, broker, "kbs", "resource", "add", unique("bad"), "--file",
                 str(key), "--policy", str(bad), "--url", broker.url)
    assert result.returncode == 1
    assert result.stderr.startswith("workbench: error: key broker: policy: ")
    assert "allow_simulaton" in result.stderr and result.stderr.count("\n") == 1
    binary = cli(workbench_cli, broker, "kbs", "resource", "list", "--url", broker.url,
                 "--admin-token-file", str(key))
    assert binary.returncode == 2 and "admin token file is not UTF-8 text" in binary.stderr
    token_file = tmp_path / "token"
    token_file.write_text("a-wrong-token-of-enough-length\n")
    wrong = cli(workbench_cli, broker, "kbs", "resource", "list", "--url", broker.url,
                "--admin-token-file", str(token_file))
    assert wrong.returncode == 1
    assert wrong.stderr == "workbench: error: key broker: admin token is not valid\n"
    unreachable = cli(workbench_cli, broker, "kbs", "resource", "list", "--url",
                      "http://127.0.0.1:9")
    assert "cannot reach the key broker at http://127.0.0.1:9" in unreachable.stderr


def test_get_resource_writes_0600_and_matches(workbench_cli, broker, installed_policy,
                                              tmp_path):
    key = os.urandom(32)
    path = unique("get")
    broker.add_resource(path, key, json.loads(installed_policy.read_text()))
    out = tmp_path / "released.key"
    result = get_resource_cli(workbench_cli, broker, path, "--tee", "simulated", "--out",
                              str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == key
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "token verified with broker key" in result.stderr


def test_get_resource_refused_leaves_no_file(workbench_cli, broker, provider, tmp_path):
    path = unique("refused")
    broker.add_resource(path, os.urandom(32), sim_policy(provider, allow_simulation=False))
    out = tmp_path / "never.key"
    result = cli(workbench_cli, broker, "kbs", "get-resource", "--url", broker.url, path,
                 "--out", str(out))
    assert result.returncode == 1
    assert f"key broker refused {path}: policy" in result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_get_resource_waits_for_approval_via_cli(workbench_cli, broker, installed_policy,
                                                 tmp_path):
    key = os.urandom(32)
    path = unique("approve-cli")
    broker.add_resource(path, key, json.loads(installed_policy.read_text()),
                        require_approval=True)
    out = tmp_path / "approved.key"
    result: dict = {}

    def fetch() -> None:
        result["run"] = get_resource_cli(workbench_cli, broker, path, "--out", str(out),
                                         "--wait", "60", timeout=90)

    thread = threading.Thread(target=fetch)
    thread.start()
    request_id = None
    for _ in range(100):
        pending = cli(workbench_cli, broker, "kbs", "pending", "--url", broker.url, "--json")
        matching = [p for p in json.loads(pending.stdout) if p["resource"] == path]
        if matching:
            request_id = matching[0]["id"]
            break
        time.sleep(0.2)
    assert request_id, "no pending request appeared"
    approved = cli(workbench_cli, broker, "kbs", "approve", request_id, "--reason", "ok",
                   "--url", broker.url)
    assert f"{request_id}: approved ({path})" in approved.stdout
    thread.join(timeout=90)
    assert result["run"].returncode == 0, result["run"].stderr
    assert "pending approval by the data owner" in result["run"].stderr
    assert out.read_bytes() == key


def test_get_resource_rejects_a_bad_path_locally(workbench_cli, broker, tmp_path):
    result = cli(workbench_cli, broker, "kbs", "get-resource", "--url", broker.url, "a/b",
                 "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "must have the form repository/type/tag" in result.stderr


def test_sealed_table_opens_with_keys_released_by_the_broker(broker, provider, tmp_path):
    frame = pd.DataFrame({"mrn": ["A1", "B2"], "age": [61, 47]})
    plain = tmp_path / "cohort.parquet"
    frame.to_parquet(plain)
    keyring = Keyring.create(tmp_path / "owner.keyring")
    dataset = f"cohort{os.urandom(3).hex()}"
    sealed = seal_table(plain, tmp_path / "cohort.sealed.parquet", protect=["mrn"],
                        keyring=keyring, dataset=dataset)
    for entry in keyring.entries():
        broker.add_resource(entry.resource, entry.material, sim_policy(provider))
    keys = BrokerKeySource(broker.url, provider=provider)
    opened = open_table(sealed, keys)
    pd.testing.assert_frame_equal(opened.reset_index(drop=True), frame)
    claims = keys.session.verified_claims()
    assert claims["submods"]["kernel"]["ear.status"] == "warning"


def test_key_source_refusal_is_key_unavailable_with_the_reason(broker, provider):
    path = unique("ks-refused")
    broker.add_resource(path, os.urandom(32), sim_policy(provider, allow_simulation=False))
    with pytest.raises(KeyUnavailable) as caught:
        BrokerKeySource(broker.url, provider=provider).get_key(path)
    assert caught.value.resource == path
    assert "simulation" in caught.value.reason


def test_key_source_reattests_when_its_session_is_gone(broker, provider):
    first, second = unique("ks-a"), unique("ks-b")
    for path in (first, second):
        broker.add_resource(path, os.urandom(32), sim_policy(provider))
    keys = BrokerKeySource(broker.url, provider=provider)
    keys.get_key(first)
    old = keys.session
    old._http.cookies.clear()
    old._http.cookies.set("kbs-session-id", "0" * 32)
    assert len(keys.get_key(second)) == 32
    assert keys.session is not old
