"""The imaging walkthrough, executed as committed on a real kernel against a real broker
that published pydicom's CT slices and the tissue model (through a sealed session, releases
approved in it, as the headless demo runs the first walkthrough)."""

from __future__ import annotations

import nbformat
import pytest

from workbench.demo.environment import hospital
from workbench.demo.headless import HeadlessReport, execute
from workbench.demo.imaging import IMAGE_SET, MODEL, SHAPE, notebook_path, publish_imaging

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
def imaging_demo_site(tmp_path_factory):
    with hospital(tmp_path_factory.mktemp("imaging-demo")) as running:
        publish_imaging(running)
        yield running


@pytest.fixture(scope="module")
def executed(imaging_demo_site, tmp_path_factory):
    report = HeadlessReport(tmp_path_factory.mktemp("imaging-run"))
    nb = execute(imaging_demo_site, report, notebook_path())
    return report, nb


def test_the_committed_imaging_notebook_carries_no_outputs():
    nb = nbformat.read(notebook_path(), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "confidential-python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert all("step" in c.metadata.get("workbench", {}) for c in code)


def test_every_imaging_cell_runs(executed):
    report, _nb = executed
    assert report.failure == ""
    assert report.cells_run == report.cells_total == 7


def test_the_outputs_tell_the_imaging_story(executed, imaging_demo_site):
    _report, nb = executed
    cells = _cells(nb)
    assert f"{IMAGE_SET}/table-key/phi" in _data(cells["catalog"], "text/html")
    attestation = _data(cells["attest"], ATTESTATION)
    assert attestation["summary"]["status"] == "warning"
    assert attestation["summary"]["measurement"] == imaging_demo_site.measurement
    model = _data(cells["model"], "text/html")
    assert "tissue areas of a CT slice" in model and "pixels" in model and "mask" in model
    assert (f"3 slices, pixels (3, 1, {SHAPE[0]}, {SHAPE[1]}) float32"
            in _text(cells["images"]))
    assert "identifiers not opened" in _text(cells["images"])
    assert "bone_fraction" in _data(cells["score"], "text/html")
    assert _data(cells["plot"], "image/png")


def test_the_summary_measures_every_slice_without_the_phi_key(executed):
    _report, nb = executed
    summary = _data(_cells(nb)["summary"], "application/json")
    assert summary["slices_scored"] == 3 and summary["shape"] == list(SHAPE)
    # A neck and two heads: each body between 30 and 400 cm², bone a real share of each.
    assert all(30 < area < 400 for area in summary["body_cm2"])
    assert all(0.1 < share < 0.5 for share in summary["bone_fraction"])
    assert summary["identifier_columns_opened"] == []
    assert summary["runtime"] == "simulated"
    assert summary["released"] == sorted([f"{IMAGE_SET}/table-key/clinical",
                                          f"{MODEL}/file-keyset/main"])


def test_the_broker_released_the_imaging_keys_in_the_sealed_session(executed,
                                                                    imaging_demo_site):
    with imaging_demo_site.admin() as admin:
        releases = admin.audit(kind="release")
    assert {r["payload"]["resource"] for r in releases} == {f"{IMAGE_SET}/table-key/clinical",
                                                            f"{MODEL}/file-keyset/main"}
    assert {r["payload"]["analyst_approval"]["mode"] for r in releases} == {"sealed"}
