"""Release options for users and groups: the rule's reasons, the admin CLI that sets them,
and a store from before them (migration 0002) keeping its resources open to anyone."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest
from sqlalchemy import select, text

from workbench.kbs.errors import KbsError
from workbench.kbs.identity import Presented, User
from workbench.kbs.kek import Kek
from workbench.kbs.release_rules import ReleaseOptions, check_names, failed, judge_release
from workbench.kbs.store import open_store
from workbench.kbs.store.schema import resources

ALICE = Presented(user=User("alice", ("radiology",)), provider="hub")
BOB = Presented(user=User("bob", ()), provider="hub")


@pytest.mark.parametrize("options, presented, reason", [
    (ReleaseOptions(users=("alice",)), BOB, "user 'bob' is not in [alice]"),
    (ReleaseOptions(groups=("oncology", "surgery")), ALICE,
     "user 'alice' is in none of the groups [oncology, surgery] (their groups: [radiology])"),
    (ReleaseOptions(users=("carol",), groups=("oncology",)), ALICE,
     "user 'alice' is not in [carol] and is in none of the groups [oncology] (their groups: "
     "[radiology])"),
    (ReleaseOptions(users=("alice",)), Presented(),
     "no user identity was presented; releases are restricted to users [alice] (a kernel "
     "started by JupyterHub sends WORKBENCH_IDENTITY_TOKEN)"),
    (ReleaseOptions(groups=("oncology",)), Presented(checked=False),
     "the broker has no identity provider (hub_api_url) to check the user against groups "
     "[oncology] (a kernel started by JupyterHub sends WORKBENCH_IDENTITY_TOKEN)"),
])
def test_each_refusal_names_the_rule_and_why(options, presented, reason):
    assert failed(options, presented) == [{
        "name": "user-allowed", "expected": options.to_json(),
        "actual": presented.user.to_json() if presented.user else None, "reason": reason}]


@pytest.mark.parametrize("options, reason", [
    (ReleaseOptions(users=("alice",)), "user 'alice' is named"),
    (ReleaseOptions(users=("bob",), groups=("radiology",)),
     "user 'alice' is in group(s) [radiology]"),
])
def test_named_users_and_group_members_pass(options, reason):
    [outcome] = judge_release(options, ALICE)
    assert outcome.passed and outcome.reason == reason


def test_a_resource_without_options_involves_no_rule():
    assert judge_release(ReleaseOptions(), Presented()) == []


@pytest.mark.parametrize("names, reason", [
    (["alice", ""], "users: '' is not a name"),
    (["line\nbreak"], "users: 'line\\nbreak' is not a name"),
    (["x"] * 257, "users: at most 256 names"),
])
def test_unusable_names_are_refused(names, reason):
    with pytest.raises(KbsError) as refused:
        check_names(names, "users")
    assert refused.value.kind == "InvalidPolicy" and refused.value.detail == reason


def test_a_store_from_before_user_rules_keeps_its_resources_open(tmp_path):
    url = f"sqlite:///{tmp_path / 'kbs.db'}"
    old = open_store(url, migrate=False)
    old.migrate("0001")
    with old.write() as conn:
        # The row as 0001 knew it: no users or groups columns yet.
        conn.execute(text(
            "INSERT INTO resources (path, policy, require_approval, approval_timeout_s, "
            "status, version, key_length, created_at, updated_at) VALUES "
            "('cohort/table-key/phi', '{}', 0, 60, 'active', 1, 32, 't', 't')"))
    old.dispose()
    # Upgrading a store that holds resources authenticates them under its KEK.
    store = open_store(url, kek=Kek(secrets.token_bytes(32)))
    with store.read() as conn:
        row = conn.execute(select(resources)).one()
    store.dispose()
    assert row.path == "cohort/table-key/phi" and row.users is None and row.groups is None


def test_the_admin_cli_sets_shows_and_lifts_user_rules(site, workbench_cli, tmp_path):
    env = {**os.environ, "WORKBENCH_KBS_ADMIN_TOKEN": site.admin_token,
           "WORKBENCH_KBS_URL": site.broker_url}
    key, policy = tmp_path / "key", tmp_path / "policy.json"
    key.write_bytes(secrets.token_bytes(32))
    policy.write_text(json.dumps(site.policy))
    path = f"cli{secrets.token_hex(3)}/table-key/clinical"

    def kbs(*args: str) -> dict:
        done = subprocess.run([workbench_cli, "kbs", *args, "--json"], env=env,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    added = kbs("resource", "add", path, "--file", str(key), "--policy", str(policy),
                "--user", "alice", "--user", "dana", "--group", "oncology")
    assert added["users"] == ["alice", "dana"] and added["groups"] == ["oncology"]
    shown = kbs("policy", "show", path)
    assert shown["users"] == ["alice", "dana"] and shown["groups"] == ["oncology"]
    narrowed = kbs("policy", "set", path, "--policy", str(policy), "--user", "alice")
    assert narrowed["users"] == ["alice"] and narrowed["groups"] == ["oncology"]
    lifted = kbs("policy", "set", path, "--policy", str(policy), "--any-user")
    assert lifted["users"] is None and lifted["groups"] is None
    with site.admin() as admin:
        changes = [r["payload"] for r in admin.audit(kind="admin", limit=1000)
                   if r["payload"]["resource"] == path]
    assert [c["users"] for c in changes] == [["alice", "dana"], ["alice"], []]


def test_the_approver_sees_who_asks(site, tokens, workbench_cli):
    from workbench.attestation.tee import get_provider
    from workbench.brokerclient import BrokerSession, PendingRelease
    from workbench.brokerclient.identity import IdentityToken

    path = f"appr{secrets.token_hex(3)}/table-key/clinical"
    with site.admin() as admin:
        admin.add_resource(path, secrets.token_bytes(32), site.policy, require_approval=True,
                           approval_timeout_s=600, users=["alice"])
    site.repin()
    with BrokerSession(site.broker_url, identity=IdentityToken(tokens["alice"]),
                       provider=get_provider("simulated", home=site.home)) as session:
        session.attest([path])
        pending = session.fetch(path)
    assert isinstance(pending, PendingRelease)
    env = {**os.environ, "WORKBENCH_KBS_ADMIN_TOKEN": site.admin_token}
    listed = subprocess.run([workbench_cli, "kbs", "pending", "--url", site.broker_url],
                            env=env, capture_output=True, text=True, check=True).stdout
    [line] = [line for line in listed.splitlines() if line.startswith(pending.request_id)]
    assert f"{path}  deadline " in line and "  user alice  verdict warning  " in line
