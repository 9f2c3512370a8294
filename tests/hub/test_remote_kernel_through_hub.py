"""An analyst behind JupyterHub: the hub (deploy/jupyterhub/jupyterhub_config.py, local mode)
spawns their JupyterLab; a Confidential Python kernel started through that server's REST API
attests to the hospital's broker, has the cohort and model keys released (non-interactive
approval), and scores the cohort over the kernel websocket, all through the proxy."""

from __future__ import annotations

import httpx
import pytest
from demo_scores import ATTEST_CELL, EXPECTED_RELEASES, SCORE_CELL, check_scores
from remote_kernel import ATTESTATION_MIME

pytestmark = pytest.mark.slow

USER = "alice"
ENVIRONMENT = """
import json, os
print(json.dumps({k: os.environ.get(k) for k in
                  ("WORKBENCH_KBS_URL", "WORKBENCH_KERNEL_RUNTIME", "JUPYTERHUB_USER")}))
"""


@pytest.fixture(scope="module")
def server(hub):
    return hub.user_server(USER)


@pytest.fixture(scope="module")
def session(server, site):
    """One Confidential Python kernel of the user's: attested, keys released, cohort scored.
    The tests below read what happened from the outputs, the server and the broker."""
    audit_before = _last_seq(site)
    with server.kernel("confidential-python") as kernel:
        attested = kernel.execute(ATTEST_CELL)
        scored = kernel.execute(SCORE_CELL)
        environment = kernel.execute(ENVIRONMENT)
    return {"attested": attested, "scored": scored, "environment": environment,
            "audit_before": audit_before}


def _last_seq(site) -> int:
    with site.admin() as admin:
        records = admin.audit(limit=1000)
    return records[-1]["seq"] if records else 0


def test_the_users_server_offers_the_confidential_kernel_by_default(server):
    response = server.request("GET", "api/kernelspecs")
    assert response.status_code == 200
    specs = response.json()
    assert specs["default"] == "confidential-python"
    spec = specs["kernelspecs"]["confidential-python"]["spec"]
    assert spec["metadata"]["workbench"]["confidential"] is True
    config = server.request("GET", "workbench/config")
    assert config.status_code == 200, config.text


def test_the_broker_url_reaches_the_server_and_its_kernels(server, site, session):
    assert server.request("GET", "workbench/config").json()["broker_url"] == site.broker_url
    seen = session["environment"].last_json_line()
    assert seen == {"WORKBENCH_KBS_URL": site.broker_url, "WORKBENCH_KERNEL_RUNTIME": "simulated",
                    "JUPYTERHUB_USER": USER}


def test_the_kernel_attests_through_the_hub(session, site):
    outcome = session["attested"]
    assert outcome.error is None, outcome.error
    report = outcome.data(ATTESTATION_MIME)
    assert report is not None, outcome.results
    summary = report["summary"]
    assert summary["runtime"] == "simulated" and summary["simulated"] is True
    assert summary["measurement"] == site.measurement
    assert summary["binding"]["bound"] is True
    assert summary["policy_id"] == site.policy["id"]
    assert summary["status"] == "warning"  # simulated evidence, accepted by allow_simulation


def test_the_server_extension_verifies_the_report_itself(server, session, site):
    report = session["attested"].data(ATTESTATION_MIME)
    response = server.verify(report)
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["state"] == "simulated", verdict["reason"]
    assert all(check["ok"] for check in verdict["checks"]), verdict["checks"]
    assert {c["name"] for c in verdict["checks"]} >= {"token-signature", "binding", "policy"}
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


def test_the_broker_audited_non_interactive_releases(session, site):
    with site.admin() as admin:
        records = admin.audit(after=session["audit_before"], kind="release", limit=100)
    released = {r["payload"]["resource"]: r["payload"] for r in records}
    assert sorted(released) == EXPECTED_RELEASES
    for payload in released.values():
        assert payload["analyst_approval"] == {"mode": "non-interactive", "by": "approve=True"}


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
