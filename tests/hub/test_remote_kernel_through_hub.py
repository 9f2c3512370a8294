"""Analysts behind JupyterHub: the hub (deploy/jupyterhub/jupyterhub_config.py, local mode)
spawns their JupyterLab; a Confidential Python kernel started through that server's REST API
attests to the hospital's broker, has the cohort and model keys released (non-interactive
approval) and scores the cohort over the kernel websocket, all through the proxy. The cohort
is restricted to alice: bob's kernel passes the same policy but is refused the cohort by the
per-user rule, checked against the identity the hub vouches for."""

from __future__ import annotations

import httpx
import pytest
from demo_scores import ATTEST_CELL, EXPECTED_RELEASES, SCORE_CELL, check_scores
from remote_kernel import ATTESTATION_MIME

from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key

pytestmark = pytest.mark.slow

ANALYST, OTHER = "alice", "bob"
COHORT_KEYS = (table_key("cohort", CLINICAL_ROLE), table_key("cohort", PHI_ROLE))
ENVIRONMENT = """
import json, os
print(json.dumps({k: os.environ.get(k) for k in
                  ("WORKBENCH_KBS_URL", "WORKBENCH_KERNEL_RUNTIME", "JUPYTERHUB_USER")}))
"""
OTHERS_TRY = """
import json
import workbench as wb
model = wb.load_model("risk-model", approve=True)
try:
    wb.open_dataset("cohort", columns=[*model.features, "diagnosis"], approve=True)
except Exception as err:
    print(json.dumps({"error": type(err).__name__, "message": str(err),
                      "released": [r["resource"] for r in wb.status()["released"]]}))
"""


@pytest.fixture(scope="module")
def restricted(site):
    """The hospital restricts the cohort to alice (the model stays open to any analyst)."""
    with site.admin() as admin:
        for path in COHORT_KEYS:
            admin.set_policy(path, site.policy, require_approval=None,
                             approval_timeout_s=None, users=[ANALYST])
    return COHORT_KEYS


@pytest.fixture(scope="module")
def server(hub):
    return hub.user_server(ANALYST)


def _last_seq(site) -> int:
    with site.admin() as admin:
        records = admin.audit(limit=1000)
    return records[-1]["seq"] if records else 0


@pytest.fixture(scope="module")
def session(server, site, restricted):
    """One Confidential Python kernel of alice's: attested, keys released, cohort scored,
    and its report checked by her server while the kernel (and its connection) is live."""
    site.repin()  # the installed code may have changed since the hospital pinned it
    audit_before = _last_seq(site)
    with server.kernel("confidential-python") as kernel:
        attested = kernel.execute(ATTEST_CELL)
        report = attested.data(ATTESTATION_MIME) or {}
        live = server.verify({**report, "kernel_id": kernel.kernel_id})
        scored = kernel.execute(SCORE_CELL)
        environment = kernel.execute(ENVIRONMENT)
    return {"attested": attested, "live_verdict": live, "scored": scored,
            "environment": environment, "audit_before": audit_before}


def test_the_users_server_offers_the_confidential_kernel_by_default(server):
    response = server.request("GET", "api/kernelspecs")
    assert response.status_code == 200
    specs = response.json()
    assert specs["default"] == "confidential-python"
    spec = specs["kernelspecs"]["confidential-python"]["spec"]
    assert spec["metadata"]["workbench"]["confidential"] is True


def test_the_broker_url_reaches_the_server_and_its_kernels(server, site, session):
    config = server.request("GET", "workbench/config")
    assert config.status_code == 200, config.text
    assert config.json()["broker_url"] == site.broker_url
    seen = session["environment"].last_json_line()
    assert seen == {"WORKBENCH_KBS_URL": site.broker_url, "WORKBENCH_KERNEL_RUNTIME": "simulated",
                    "JUPYTERHUB_USER": ANALYST}


def test_the_kernel_attests_through_the_hub(session, site):
    outcome = session["attested"]
    assert outcome.error is None, outcome.error
    summary = outcome.data(ATTESTATION_MIME)["summary"]
    assert summary["runtime"] == "simulated" and summary["simulated"] is True
    assert summary["measurement"] == site.measurement
    assert summary["binding"]["bound"] is True
    assert summary["policy_id"] == site.policy["id"]
    assert summary["status"] == "warning"  # simulated evidence, accepted by allow_simulation
    # The kernel's channels are CurveZMQ under a key the evidence binds.
    assert len(bytes.fromhex(summary["binding"]["transport_key"])) == 32


def test_the_users_server_verifies_the_report_and_its_own_connection(session, site):
    response = session["live_verdict"]
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["state"] == "simulated", verdict["reason"]
    checks = {c["name"]: c for c in verdict["checks"]}
    assert all(c["ok"] for c in checks.values()), verdict["checks"]
    assert {"token-signature", "binding", "policy", "transport-key"} <= set(checks)
    assert "connection to kernel" in checks["transport-key"]["detail"]
    assert verdict["broker"]["url"] == site.broker_url


def test_a_report_for_another_key_is_refused_by_the_server(server, session):
    from jwcrypto.jwk import JWK

    report = dict(session["attested"].data(ATTESTATION_MIME))
    other = JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)
    report["tee_pubkey"] = {**other, "alg": "ECDH-ES+A256KW"}
    verdict = server.verify(report).json()
    assert verdict["state"] == "refused"
    failed = [c["name"] for c in verdict["checks"] if not c["ok"]]
    assert "kernel-key" in failed, verdict["checks"]


def test_release_and_inference_score_the_cohort(session, plain_scores):
    check_scores(session["scored"].last_json_line(), plain_scores)


def test_the_broker_audited_alices_non_interactive_releases(session, site):
    with site.admin() as admin:
        records = admin.audit(after=session["audit_before"], kind="release", limit=100)
    released = {r["payload"]["resource"]: r["payload"] for r in records}
    assert sorted(released) == EXPECTED_RELEASES
    for payload in released.values():
        assert payload["analyst_approval"] == {"mode": "non-interactive", "by": "approve=True"}
        assert payload["user"]["name"] == ANALYST


def test_a_user_not_named_in_the_dataset_policy_is_refused(hub, site, restricted, session):
    other = hub.user_server(OTHER)
    site.repin()
    audit_before = _last_seq(site)
    with other.kernel("confidential-python") as kernel:
        outcome = kernel.execute(OTHERS_TRY).last_json_line()
    assert outcome["error"] == "ReleaseRefused"
    assert "user-allowed" in outcome["message"]
    assert f"user '{OTHER}' is not in [{ANALYST}]" in outcome["message"]
    # The same kernel code passes the policy: the model, open to every analyst, was released.
    assert outcome["released"] == ["risk-model/file-keyset/main"]
    with site.admin() as admin:
        refusals = admin.audit(after=audit_before, kind="refusal", limit=100)
    cohort = [r["payload"] for r in refusals if r["payload"]["resource"] in restricted]
    assert cohort and all(p["failed_rules"] == ["user-allowed"] for p in cohort)
    assert all(p["user"]["name"] == OTHER for p in cohort)


def test_the_users_server_refuses_requests_without_the_users_token(hub, server, session):
    report = session["attested"].data(ATTESTATION_MIME)
    anonymous = httpx.post(f"{server.url}/workbench/verify", json=report, timeout=30,
                           follow_redirects=False)
    assert anonymous.status_code in (302, 403), anonymous.status_code
    kernels = httpx.get(f"{server.url}/api/kernels", timeout=30, follow_redirects=False)
    assert kernels.status_code in (302, 403), kernels.status_code
    # Another user's token does not open alice's server either.
    hub.create_user("mallory")
    intruder = hub.user_token("mallory")
    refused = httpx.get(f"{server.url}/api/kernels", timeout=30, follow_redirects=False,
                        headers={"Authorization": f"token {intruder}"})
    assert refused.status_code == 403, refused.status_code
