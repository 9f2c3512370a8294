"""``workbench run`` says so, and exits non-zero, when the sealed session is violated, and
reports gaps on IOPub.

The notebook's cells put on IOPub what a relay would: an unsealed output with the cell's
parent (written past the kernel's sealing, as the relay writes it past the session), and a
sealed output that never arrives (a counter the kernel spends without sending, as when a
relay or Jupyter drops one). The client cannot tell those from the relay's own doing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from sealed_helpers import ROOT

SKIP_ONE = ("from workbench.sealed import Lane\n"
            "get_ipython().kernel.workbench.seal.channel.seal(b'never sent', Lane.IOPUB)\n"
            "print('after the gap')")
FORGE = ("k = get_ipython().kernel\n"
         "with k._plain():\n"
         "    k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'forged\\n'},"
         " parent=k.get_parent())")


def test_run_reports_a_gap_and_stops_on_an_unsealed_output(site, tmp_path: Path) -> None:
    site.repin()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SKIP_ONE), nbformat.v4.new_code_cell(FORGE),
                nbformat.v4.new_code_cell("print('not reached')")]
    notebook, out = tmp_path / "violated.ipynb", tmp_path / "violated-out.ipynb"
    nbformat.write(nb, notebook)
    env = {**os.environ, **site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    workbench = str(Path(sys.executable).with_name("workbench"))
    done = subprocess.run([workbench, "run", str(notebook), "--out", str(out), "--approve"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "  cell 1/3: ok" in "\n".join(lines)
    assert "  cell 1: 1 sealed output message(s) were lost on the way (a gap on IOPub): its " \
           "outputs may be incomplete" in lines
    assert any(line.startswith("  cell 2/3: refused") for line in lines)
    stopped = ("1 message(s) that did not come sealed from this session were refused, so "
               "this cell's outputs and reply cannot be trusted as the kernel's: unsealed: an "
               "unsealed stream arrived, but a locked kernel seals every stream: it is not "
               "this session's")
    assert f"  stopped at cell 2: {stopped}" in lines
    assert f"{notebook}: 1 of 3 cells ran sealed; outputs in {out}" in lines
    assert f"{notebook}: 1 sealed output message(s) were lost on the way (IOPub gaps): the " \
           "cells that say so may lack outputs" in lines
    assert f"{notebook}: REFUSED: the sealed session was violated: {stopped}" \
        in done.stderr.splitlines()
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "after the gap\n"
    assert executed.cells[0].metadata["execution"]["workbench.sealed.dropped"] == 1
    assert "forged" not in str(executed.cells[1].outputs)
    assert executed.cells[2].outputs == []
