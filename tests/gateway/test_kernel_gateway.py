"""JupyterLab with ``--gateway-url``: the Confidential Python kernel runs under the Kernel
Gateway (its provisioner, its machine); JupyterLab only relays. Attestation, release and
inference go over JupyterLab's kernel websocket, and the server extension's verification
route judges the kernel's report without any access to the kernel's ZMQ ports."""

from __future__ import annotations

import pytest
from demo_scores import ATTEST_CELL, SCORE_CELL, check_scores
from remote_kernel import ATTESTATION_MIME

pytestmark = pytest.mark.slow

KERNEL = "confidential-python"
PROBE = """
import json, os
print(json.dumps({"auto_approve": os.environ.get("WORKBENCH_AUTO_APPROVE"),
                  "broker": os.environ.get("WORKBENCH_KBS_URL"),
                  "runtime": os.environ.get("WORKBENCH_KERNEL_RUNTIME"),
                  "pid": os.getpid()}))
"""
UNAPPROVED = 'import workbench as wb\nwb.open_dataset("cohort", columns=["mean_radius"])'


@pytest.fixture(scope="module")
def session(lab, gateway, site):
    """One Confidential Python kernel started through JupyterLab, living on the gateway."""
    site.repin()  # the installed code may have changed since the hospital pinned it
    with lab.kernel(KERNEL) as kernel:
        on_gateway = [k["id"] for k in gateway.api.kernels()]
        outcomes = {"probe": kernel.execute(PROBE), "attested": kernel.execute(ATTEST_CELL)}
        report = outcomes["attested"].data(ATTESTATION_MIME) or {}
        outcomes["live_verdict"] = lab.verify({**report, "kernel_id": kernel.kernel_id})
        outcomes["unapproved"] = kernel.execute(UNAPPROVED)
        outcomes["scored"] = kernel.execute(SCORE_CELL)
    return {"kernel_id": kernel.kernel_id, "on_gateway": on_gateway, **outcomes}


def test_jupyterlab_lists_the_gateways_kernelspecs(lab):
    specs = lab.request("GET", "api/kernelspecs").json()
    assert specs["default"] == KERNEL
    assert set(specs["kernelspecs"]) == {KERNEL}
    assert specs["kernelspecs"][KERNEL]["spec"]["metadata"]["workbench"]["confidential"]


def test_the_kernel_runs_on_the_gateway(session, lab):
    assert session["kernel_id"] in session["on_gateway"]
    probe = session["probe"].last_json_line()
    assert probe["runtime"] == "simulated"
    # The gateway's environment does not leak into the kernel beyond what it passes on.
    assert probe["auto_approve"] is None


def test_the_gateway_does_not_approve_releases_for_the_analyst(session):
    outcome = session["unapproved"]
    assert outcome.error is not None
    assert outcome.error["ename"] == "ApprovalRequired"
    assert "needs the analyst's confirmation" in outcome.error["evalue"]


def test_attestation_through_the_gateway(session, site):
    outcome = session["attested"]
    assert outcome.error is None, outcome.error
    summary = outcome.data(ATTESTATION_MIME)["summary"]
    assert summary["runtime"] == "simulated"
    assert summary["measurement"] == site.measurement
    assert summary["binding"]["bound"] is True


def test_the_server_extension_verifies_a_gateway_kernel(session, lab, site):
    report = session["attested"].data(ATTESTATION_MIME)
    response = lab.verify(report)
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["state"] == "simulated", verdict["reason"]
    assert all(check["ok"] for check in verdict["checks"]), verdict["checks"]
    assert verdict["broker"]["url"] == site.broker_url


def test_behind_a_gateway_the_transport_key_is_the_gateways_to_check(session):
    """JupyterLab holds no ZMQ connection to a gateway kernel (the gateway does), so it has
    no server key of its own to compare: the check is left out, everything else holds."""
    verdict = session["live_verdict"].json()
    assert verdict["state"] == "simulated", verdict["reason"]
    names = [c["name"] for c in verdict["checks"]]
    assert "transport-key" not in names and "binding" in names
    summary = session["attested"].data(ATTESTATION_MIME)["summary"]
    assert len(bytes.fromhex(summary["binding"]["transport_key"])) == 32


def test_a_tampered_report_is_refused_for_a_gateway_kernel(session, lab):
    report = dict(session["attested"].data(ATTESTATION_MIME))
    report["nonce"] = "not-the-nonce-the-broker-issued"
    verdict = lab.verify(report).json()
    assert verdict["state"] == "refused"
    assert "nonce" in [c["name"] for c in verdict["checks"] if not c["ok"]], verdict["checks"]


def test_release_and_inference_through_the_gateway(session, plain_scores):
    check_scores(session["scored"].last_json_line(), plain_scores)
