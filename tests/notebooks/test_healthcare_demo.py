"""The walkthrough notebook, executed as committed on a real kernel against a real broker.

Outputs are never trusted: the committed file must carry none, and everything asserted
here comes from a fresh execution (through a sealed session, releases approved in it, as
the headless demo runs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from workbench.demo.environment import hospital
from workbench.demo.headless import HeadlessReport, execute, notebook_path

ATTESTATION = "application/vnd.workbench.attestation+json"


def _cells(nb) -> dict[str, dict]:
    return {c.metadata["workbench"]["step"]: c for c in nb.cells if c.cell_type == "code"}


def _data(cell, mime: str):
    for output in cell.outputs:
        if mime in output.get("data", {}):
            return output["data"][mime]
    return None


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="module")
def executed(site, tmp_path_factory):
    report = HeadlessReport(tmp_path_factory.mktemp("run"))
    nb = execute(site, report, notebook_path())
    return report, nb


def test_the_committed_notebook_carries_no_outputs():
    nb = nbformat.read(notebook_path(), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "confidential-python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert all("step" in c.metadata.get("workbench", {}) for c in code)


def test_every_cell_runs(executed):
    report, _nb = executed
    assert report.failure == ""
    assert report.cells_run == report.cells_total == 9


def test_the_story_is_told_by_the_outputs(executed, site):
    _report, nb = executed
    cells = _cells(nb)
    assert "cohort/table-key/phi" in _data(cells["catalog"], "text/html")
    attestation = _data(cells["attest"], ATTESTATION)
    assert attestation["summary"]["status"] == "warning"
    assert attestation["summary"]["measurement"] == site.measurement
    assert attestation["summary"]["binding"]["bound"] is True
    assert "held-out AUC" in _data(cells["model"], "text/html")
    assert "569 patients, 31 columns, identifiers not opened" in _text(cells["cohort"])
    assert "probability_malignant" in _data(cells["score"], "text/html")
    assert _data(cells["plot"], "image/png")
    assert "refused" in _data(cells["refusal"], "text/html")


def test_summary_scores_every_patient_and_shows_the_refusal(executed):
    _report, nb = executed
    summary = _data(_cells(nb)["summary"], "application/json")
    assert summary["patients_scored"] == 569
    assert 0.95 < summary["auc"] <= 1.0
    assert summary["refusal_shown"] is True
    assert summary["failed_rules"] == ["simulated.measurement"]
    assert summary["runtime"] == "simulated"
    # Only what the walkthrough needs left the broker: never the identifier key.
    assert sorted(summary["released"]) == ["cohort/table-key/clinical",
                                           "risk-model/file-keyset/main"]


def test_the_broker_audited_sealed_approvals_and_the_refusal(executed, site):
    report, _nb = executed
    with site.admin() as admin:
        releases = admin.audit(kind="release")
        refusals = admin.audit(kind="refusal")
    assert {r["payload"]["resource"] for r in releases} == {"cohort/table-key/clinical",
                                                            "risk-model/file-keyset/main"}
    # Approved in the sealed session the run locked the kernel to, named by the broker.
    sessions = {json.dumps(r["payload"]["analyst_approval"], sort_keys=True) for r in releases}
    [approval] = [json.loads(s) for s in sessions]
    assert approval["mode"] == "sealed" and len(approval["session"]) == 64
    assert report.sealed[0].startswith(f"sealed session {approval['session'][:16]}:")
    assert [r["payload"]["failed_rules"] for r in refusals] == [["simulated.measurement"]]


def test_a_failing_cell_is_reported_by_its_step(site, tmp_path: Path):
    nb = nbformat.read(notebook_path(), as_version=4)
    broken = nbformat.v4.new_code_cell("wb.open_dataset('no-such-dataset')")
    broken.metadata["workbench"] = {"step": "broken"}
    nb.cells = [nb.cells[2], broken, *nb.cells[3:]]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    report = HeadlessReport(tmp_path)
    execute(site, report, path)
    assert not report.ok
    assert report.failed_step == "broken" and report.cells_run == 1
    assert report.failure.startswith("WorkbenchError: no dataset named 'no-such-dataset'")
    assert json.dumps(report.lines()).count("FAILED at step 'broken'") == 1
