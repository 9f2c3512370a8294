"""Per-user release policies, with identities a real JupyterHub vouches for.

The cohort's keys are released to alice only; a trial key to the 'oncology' group. Kernels
carry their user's identity token (``WORKBENCH_IDENTITY_TOKEN``, minted with no scopes);
the broker resolves it at the hub. Refusals name the rule, tokens the hub does not know
are refused, and a hub that cannot be reached is a refusal naming the hub.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from conftest import IDENTITY_CACHE_S, TRIAL_KEY, start_broker, stop

from workbench.attestation.tee import get_provider
from workbench.brokerclient import BrokerError, BrokerSession
from workbench.brokerclient.identity import IdentityToken
from workbench.demo.environment import MODEL, free_port
from workbench.sealing.resources import file_keyset

ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "confidential-python"
COHORT_CLINICAL = "cohort/table-key/clinical"


def _session(site, token: str | None) -> BrokerSession:
    """The attested client the kernel uses, with the hospital's simulated TEE."""
    site.repin()
    identity = IdentityToken(token) if token else None
    return BrokerSession(site.broker_url, identity=identity,
                         provider=get_provider("simulated", home=site.home))


def _records(site, kind: str) -> list[dict]:
    with site.admin() as admin:
        return [r["payload"] for r in admin.audit(kind=kind, limit=1000)]


class _Kernel:
    """A real kernel whose environment carries one user's identity token."""

    def __init__(self, site, token: str, log: Path) -> None:
        from jupyter_client.manager import KernelManager

        site.repin()
        env = site.kernel_env(WORKBENCH_KBS_URL=site.broker_url, WORKBENCH_AUTO_APPROVE="1",
                              WORKBENCH_IDENTITY_TOKEN=token, JUPYTER_PATH=str(ROOT))
        self._log = log.open("ab")
        self.manager = KernelManager(kernel_name=KERNEL_NAME)
        self.manager.start_kernel(env=env, stdout=self._log, stderr=self._log)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str) -> tuple[str, dict | None]:
        out: list[str] = []
        error: dict | None = None

        def hook(msg: dict) -> None:
            nonlocal error
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                error = msg["content"]

        self.client.execute_interactive(code, timeout=120, output_hook=hook)
        return "".join(out), error

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
        self._log.close()


@pytest.fixture(scope="module")
def kernels(site, tokens, tmp_path_factory):
    started = {user: _Kernel(site, tokens[user], tmp_path_factory.mktemp(user) / "kernel.log")
               for user in ("alice", "bob")}
    yield started
    for kernel in started.values():
        kernel.stop()


def test_alice_receives_the_cohort_in_her_kernel(kernels, site, hub):
    out, error = kernels["alice"].run(
        "import workbench as wb\nprint(len(wb.open_dataset('cohort')))")
    assert error is None, error
    assert out.strip() == "569"
    released = [p for p in _records(site, "release") if p["resource"] == COHORT_CLINICAL]
    assert released and released[-1]["user"] == {"name": "alice", "groups": []}
    assert released[-1]["identity_provider"] == hub.api_url


def test_bob_is_refused_and_the_refusal_names_the_rule(kernels, site):
    out, error = kernels["bob"].run(
        "import workbench as wb\nprint(wb.attest().resources['cohort/table-key/clinical'])\n"
        "wb.open_dataset('cohort')")
    assert error is not None and error["ename"] == "ReleaseRefused"
    assert error["evalue"] == (
        f"the key broker refused to release {COHORT_CLINICAL} to this kernel; failed "
        "rule(s): user-allowed: user 'bob' is not in [alice]")
    # The token already told the kernel (so it asked nobody to confirm a doomed release).
    assert "'status': 'contraindicated'" in out and "'user-allowed'" in out
    refusal = [p for p in _records(site, "refusal") if p.get("resource") == COHORT_CLINICAL][-1]
    assert refusal["user"]["name"] == "bob" and refusal["failed_rules"] == ["user-allowed"]
    # A resource without user rules is still bob's to use.
    out, error = kernels["bob"].run("import workbench as wb\n"
                                    "print(type(wb.load_model('risk-model')).__name__)")
    assert error is None, error
    assert out.strip() == "Model"


def test_group_members_are_allowed_and_others_refused_naming_the_groups(site, tokens):
    with _session(site, tokens["carol"]) as carol:
        carol.attest([TRIAL_KEY])
        assert len(carol.get_resource(TRIAL_KEY)) == 32
    with _session(site, tokens["bob"]) as bob:
        bob.attest([TRIAL_KEY])
        with pytest.raises(BrokerError) as refused:
            bob.get_resource(TRIAL_KEY)
    assert refused.value.kind == "PolicyDeny"
    assert refused.value.failed_rules == [{
        "name": "user-allowed", "expected": {"users": [], "groups": ["oncology"]},
        "actual": {"name": "bob", "groups": []},
        "reason": "user 'bob' is in none of the groups [oncology] (their groups: [])"}]


def test_without_an_identity_restricted_keys_are_refused_and_open_ones_released(site):
    with _session(site, None) as anonymous:
        anonymous.attest([COHORT_CLINICAL, file_keyset(MODEL)])
        assert anonymous.get_resource(file_keyset(MODEL))
        with pytest.raises(BrokerError) as refused:
            anonymous.get_resource(COHORT_CLINICAL)
    assert "user-allowed: no user identity was presented; releases are restricted to users " \
           "[alice]" in str(refused.value)


@pytest.mark.parametrize("token", ["forged-" + secrets.token_hex(16), "x" * 600])
def test_a_token_the_hub_does_not_know_is_refused(site, hub, token):
    with _session(site, token) as session, pytest.raises(BrokerError) as refused:
        session.attest([file_keyset(MODEL)])
    assert refused.value.kind == "IdentityRejected" and refused.value.status == 401
    if len(token) < 512:
        assert f"the identity token was not accepted by the hub at {hub.api_url} (HTTP 403)" \
            in str(refused.value)
    else:
        assert "the X-Workbench-Identity header is not a token" in str(refused.value)
    rejected = [p for p in _records(site, "attest") if p.get("problem") == "IdentityRejected"]
    assert rejected and rejected[-1]["verdict"] == "rejected"


def test_a_token_of_a_service_is_not_a_user(site, hub):
    with _session(site, hub.token) as session, pytest.raises(BrokerError) as refused:
        session.attest([file_keyset(MODEL)])
    assert refused.value.kind == "IdentityRejected"
    assert "the identity token belongs to service 'identity-test-admin', not to a user" \
        in str(refused.value)


def test_a_revoked_token_is_refused_once_the_cached_answer_expires(site, hub):
    token, token_id = hub.identity_token("alice")
    with _session(site, token) as session:
        session.attest([COHORT_CLINICAL])
        assert len(session.get_resource(COHORT_CLINICAL)) == 32
        hub.revoke("alice", token_id)
        # The broker reuses the hub's answer for identity_cache_s: documented, and bounded.
        time.sleep(IDENTITY_CACHE_S + 0.5)
        with pytest.raises(BrokerError) as refused:
            session.get_resource(COHORT_CLINICAL)
    assert refused.value.kind == "IdentityRejected"


def test_the_hub_being_unreachable_is_a_refusal_naming_the_hub(site, tmp_path):
    down = f"http://127.0.0.1:{free_port()}/hub/api"
    config = tmp_path / "kbs.toml"
    config.write_text(f'hub_api_url = "{down}"\n')
    port = free_port()
    broker = start_broker(site.home, port, secrets.token_urlsafe(24), tmp_path / "broker.log",
                          config)
    try:
        session = BrokerSession(f"http://127.0.0.1:{port}",
                                identity=IdentityToken(secrets.token_hex(16)))
        with session, pytest.raises(BrokerError) as refused:
            session.attest([])
    finally:
        stop(broker)
    assert refused.value.kind == "IdentityUnavailable" and refused.value.status == 503
    assert f"cannot check the user's identity: the hub at {down} is unreachable (" \
        in str(refused.value)


def test_the_hub_gives_each_server_an_identity_its_kernels_send(hub, site):
    """The whole path: the hub mints alice's identify-only token as it starts her server
    (``hub_identity_token`` in Spawner.environment), the server passes its environment to
    the kernel it starts, and the kernel sends the token with its release."""
    import asyncio
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "transport"))
    from lab_server import execute_over_websocket

    site.repin()
    hub.start_server("alice")
    server = f"{hub.url}/user/alice"
    kernel_id = hub.start_kernel("alice", KERNEL_NAME)
    printed = asyncio.run(execute_over_websocket(server, hub.token, kernel_id, (
        "import os, workbench as wb\n"
        "token = os.environ.get('WORKBENCH_IDENTITY_TOKEN', '')\n"
        "print(bool(token), token != os.environ.get('JUPYTERHUB_API_TOKEN'))\n"
        "print(len(wb.open_dataset('cohort', approve=True)))")))
    assert printed.split() == ["True", "True", "569"], printed
    release = [p for p in _records(site, "release") if p["resource"] == COHORT_CLINICAL][-1]
    assert release["analyst_approval"] == {"mode": "non-interactive", "by": "approve=True"}
    assert release["user"] == {"name": "alice", "groups": []}
