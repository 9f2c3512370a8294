"""The analyst's confirmation over the workbench.attestation comm, while the cell waits.

The fake frontend here is a jupyter_client connection that opens the comm and answers
``release-request`` messages, as the lab extension does; the kernel receives the answer on
its private subshell while the cell that needs the key is still running.
"""

from __future__ import annotations

import pytest
from kernel_helpers import add_dataset, approve, audit

from workbench.kernel.transport import raw_key

APPROVAL_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def lab(start_kernel):
    kernel = start_kernel(WORKBENCH_APPROVAL_TIMEOUT_S=str(APPROVAL_TIMEOUT_S))
    kernel.open_comm()
    status = kernel.drain_comm("status")
    assert status["runtime"] == "simulated" and status["simulated"] is True
    return kernel


@pytest.fixture(autouse=True)
def _forget(lab):
    assert lab.execute("import workbench as wb\nwb.forget()").error is None


def test_hello_is_answered_with_the_kernels_status(lab, site):
    lab.send_comm({"type": "hello", "v": 1, "client": "again"})
    status = lab.drain_comm("status")
    assert status["v"] == 1 and status["broker"] == site.broker_url
    # The channel key the kernel serves with (its own CurveZMQ key; tests/transport).
    assert status["tee"] == "simulated"
    assert status["transport_key"] == raw_key(lab.manager.curve_publickey).hex()
    assert status["tee_pubkey"]["kty"] == "EC" and "d" not in status["tee_pubkey"]
    assert status["report"] is None and status["released"] == []


def test_approval_in_the_frontend_releases_and_is_audited_as_interactive(lab, site):
    outcome = lab.execute("df = wb.open_dataset('cohort', columns=['mean_area'])\n"
                          "print(len(df))", on_comm=approve(by="dr-okafor"))
    assert outcome.error is None, outcome.evalue
    assert outcome.stdout.strip() == "569"
    kinds = [m["type"] for m in outcome.comm]
    # Evidence first, then the request carrying that evidence's token, then the release.
    assert kinds.index("evidence") < kinds.index("release-request") < kinds.index("released")
    evidence = outcome.comm_of("evidence")[-1]
    request = outcome.comm_of("release-request")[0]
    assert request["resource"] == "cohort/table-key/clinical" and request["dataset"] == "cohort"
    assert request["token"] == evidence["token"]
    assert request["summary"] == {"status": "warning", "policy_id": site.policy["id"],
                                  "failed_rules": []}
    released = outcome.comm_of("released")[0]
    assert released["request_id"] == request["request_id"]
    record = audit(site, "release")[-1]
    # What the frontend said about who answered is not recorded: it is not evidence.
    assert record["analyst_approval"] == {"mode": "interactive", "by": "frontend"}
    status = outcome.comm_of("status")[-1]
    assert [r["resource"] for r in status["released"]] == ["cohort/table-key/clinical"]


def test_declined_in_the_frontend_releases_nothing(lab, site):
    before = len(audit(site, "release"))
    outcome = lab.execute("wb.load_model('risk-model')",
                          on_comm=approve(by="dr-okafor", approved=False))
    assert outcome.ename == "ApprovalDeclined"
    assert "risk-model/file-keyset/main" in outcome.evalue
    assert "declined by dr-okafor" in outcome.evalue
    refused = outcome.comm_of("refused")[0]
    assert refused["resource"] == "risk-model/file-keyset/main"
    assert refused["request_id"] == outcome.comm_of("release-request")[0]["request_id"]
    assert len(audit(site, "release")) == before


def test_no_answer_in_time_releases_nothing(lab, site):
    before = len(audit(site, "release"))
    outcome = lab.execute("wb.load_model('risk-model')")
    assert outcome.ename == "ApprovalTimeout"
    assert f"within {APPROVAL_TIMEOUT_S} s" in outcome.evalue
    assert outcome.comm_of("refused")[0]["reason"] == "no answer from the analyst in time"
    assert len(audit(site, "release")) == before


def test_a_late_or_malformed_approval_is_ignored(lab):
    lab.send_comm({"type": "approval", "v": 1, "request_id": "not-asked", "approved": True})
    lab.send_comm({"type": "approval", "v": 1, "request_id": 7})
    lab.send_comm({"type": "no-such-message", "v": 1})
    lab.send_comm({"type": "hello", "v": 1, "client": "still-alive"})
    assert lab.drain_comm("status")["released"] == []


def test_attest_request_from_the_frontend_sends_evidence(lab, site):
    lab.send_comm({"type": "attest", "v": 1})
    evidence = lab.drain_comm("evidence")
    assert evidence["broker"] == site.broker_url and evidence["tee"] == "simulated"
    assert evidence["claims"]["measurement"] == site.measurement
    assert evidence["nonce"] and evidence["nonce_issued_at"].endswith("+00:00")


def test_policy_refusal_is_not_put_to_the_analyst(lab, site):
    add_dataset(site, "research-only", policy={
        "id": "hardware-only", "allowed_tee": ["sgx", "tdx", "snp"],
        "reference_values": {"snp": {"measurement": "ab" * 48}}})
    outcome = lab.execute("wb.open_dataset('research-only')", on_comm=approve())
    assert outcome.ename == "ReleaseRefused"
    assert "tee-allowed" in outcome.evalue and "simulation" in outcome.evalue
    assert outcome.comm_of("release-request") == []
    refused = outcome.comm_of("refused")[0]
    assert {r["name"] for r in refused["failed_rules"]} >= {"tee-allowed", "simulation"}


def test_owner_denial_while_the_cell_waits(lab, site):
    add_dataset(site, "oncology", require_approval=True)
    decided = []

    def deny_when_waiting(text: str) -> None:
        if "waiting for the data owner" in text and not decided:
            request_id = text.split("(request ")[1].split(",")[0]
            with site.admin() as admin:
                decided.append(admin.decide(request_id, approve=False,
                                            reason="not for this study"))

    outcome = lab.execute("wb.open_dataset('oncology')", on_comm=approve(),
                          on_stdout=deny_when_waiting)
    assert decided and decided[0]["state"] == "denied"
    assert outcome.ename == "ReleaseRefused"
    assert "denied the release of oncology/table-key/clinical" in outcome.evalue
    assert "not for this study" in outcome.evalue


def test_owner_approval_that_never_comes_times_out(lab, site):
    add_dataset(site, "cardiology", require_approval=True, approval_timeout_s=1)
    outcome = lab.execute("wb.open_dataset('cardiology')", on_comm=approve())
    assert outcome.ename == "ApprovalTimeout"
    assert "the data owner's approval for cardiology/table-key/clinical did not come" in \
        outcome.evalue
    assert "timed out after 1 s" in outcome.evalue
    assert "waiting for the data owner to approve" in outcome.stdout
