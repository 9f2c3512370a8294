"""``workbench run``: the walkthrough through a sealed session, watched by the operator.

A passive IOPub subscriber (built from the connection file, as anyone next to the kernel
could) records the whole walkthrough plus a cell that prints patients; no patient name and
no released key (raw, hex, base64) appears in what it recorded, while the analyst's own
copy of the notebook has them in the clear.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from sealed_helpers import ROOT, Subscriber, operator_client

from workbench.client.run import run_notebook
from workbench.demo.environment import DATASET
from workbench.demo.headless import notebook_path
from workbench.sealing.keyring import Keyring
from workbench.sealing.resources import PHI_ROLE, table_key

PATIENTS = (f"import workbench as wb\n"
            f"patients = wb.open_dataset({DATASET!r}, columns=['name', 'mrn'])\n"
            "print(list(patients['name'][:5]))")


def _walkthrough_with_patients(tmp_path: Path) -> Path:
    nb = nbformat.read(notebook_path(), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PATIENTS))
    path = tmp_path / "walkthrough.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_walkthrough_runs_sealed_and_the_operator_reads_nothing(site, tmp_path: Path) -> None:
    site.repin()
    taps: list[Subscriber] = []

    class Started:
        def __init__(self, manager: Any) -> None:
            self.manager, self.others = manager, []

    def tap(manager: Any) -> None:
        taps.append(Subscriber(operator_client(Started(manager))))

    notebook = _walkthrough_with_patients(tmp_path)
    out = tmp_path / "executed.ipynb"
    env = {**site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    lines: list[str] = []
    run = run_notebook(notebook, out=out, approve=True, env=env, on_started=tap,
                       pins=tmp_path / "known_brokers.json", echo=lines.append)
    recorded = taps[0].close()
    assert run.ok, run.failed and run.failed[1]
    assert lines[0].startswith(f"sealed session {run.lock.session[:16]}: kernel locked")
    names = json.loads(run.cells[-1][1].text().replace("'", '"'))
    assert len(names) == 5
    # The analyst's copy has everything, the figure included.
    saved = nbformat.read(out, as_version=4)
    text = json.dumps(saved.cells[-1].outputs)
    assert all(name in text for name in names)
    assert any("image/png" in o.get("data", {}) for c in saved.cells
               if c.cell_type == "code" for o in c.outputs)
    keyring = Keyring.open(site.workdir / "hospital.keyring")
    # What the summary cell lists, and the identifiers' key the last cell needed.
    released = [*_status(run)["released"], table_key(DATASET, PHI_ROLE)]
    assert len(released) == 3, released
    canaries = list(names)
    for resource in released:
        key = keyring.get_key(resource)
        canaries += [key.hex(), base64.b64encode(key).decode(),
                     base64.urlsafe_b64encode(key).decode().rstrip("=")]
    assert len(recorded) > 100_000  # the figure and the tables went by, sealed
    assert [c for c in canaries if c in recorded] == []


def _status(run: Any) -> dict[str, Any]:
    for cell, result in run.cells:
        if cell.get("metadata", {}).get("workbench", {}).get("step") == "summary":
            return result.data("application/json")
    raise AssertionError("no summary cell")


def test_the_run_command(site, tmp_path: Path) -> None:
    site.repin()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import workbench as wb\nwb.status()['sealed']"),
                nbformat.v4.new_code_cell("print(6 * 7)")]
    notebook, out = tmp_path / "small.ipynb", tmp_path / "small-out.ipynb"
    nbformat.write(nb, notebook)
    env = {**os.environ, **site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    workbench = str(Path(sys.executable).with_name("workbench"))
    done = subprocess.run([workbench, "run", str(notebook), "--out", str(out), "--approve"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kernel locked, token verified here" in done.stdout
    assert f"{notebook}: 2 of 2 cells ran sealed; outputs in {out}" in done.stdout
    executed = nbformat.read(out, as_version=4)
    fingerprint = executed.cells[0].outputs[0]["data"]["text/plain"].strip("'")
    assert len(fingerprint) == 64 and fingerprint[:16] in done.stdout
    assert executed.cells[1].outputs[0]["text"] == "42\n"
    pins = json.loads((Path(env["WORKBENCH_HOME"]) / "known_brokers.json").read_text())
    assert pins[site.broker_url]["fingerprint"] in done.stdout


def test_run_refuses_what_is_not_a_notebook(tmp_path: Path) -> None:
    workbench = str(Path(sys.executable).with_name("workbench"))
    missing = subprocess.run([workbench, "run", str(tmp_path / "none.ipynb")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert f"notebook {tmp_path / 'none.ipynb'} does not exist" in missing.stderr
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    bad = subprocess.run([workbench, "run", str(broken)], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2
    assert f"notebook {broken} cannot be read as a Jupyter notebook" in bad.stderr
    assert broken.read_text() == "{not json"  # nothing lost
