"""`workbench demo` (what `make demo` runs) and `workbench demo --headless`, as a user runs them."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240


def test_headless_demo_runs_every_cell_and_summarises(tmp_path: Path, workbench_cli: str):
    result = subprocess.run([workbench_cli, "demo", "--headless", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cells run: 9 of 9" in out
    assert "patients scored: 569" in out
    auc = float(re.search(r"AUC against the recorded diagnosis: ([0-9.]+)", out).group(1))
    assert 0.95 < auc <= 1.0
    assert "refusal shown: yes (modified kernel refused; failed rule(s): " \
           "simulated.measurement)" in out
    # The walkthrough ran sealed: the kernel was locked, its token checked by this client,
    # and the broker recorded the releases as approved in that sealed session.
    assert re.search(r"sealed session [0-9a-f]{16}: kernel locked, token verified here", out)
    assert re.search(r"broker http://127\.0\.0\.1:\d+ key SHA256:[A-Za-z0-9_-]{43} "
                     r"\(pinned now \(first use\)", out)
    assert "2 release (sealed approval)" in out and "1 refusal (PolicyDeny)" in out
    for step in ("hospital: start the key broker", "notebook: attest (sealed)",
                 "notebook: score (sealed)", "notebook: refusal (sealed)"):
        assert re.search(rf"{re.escape(step)}\s+[0-9.]+ ms", out), step
    sealed = (tmp_path / "data" / "cohort.sealed.parquet").read_bytes()
    assert sealed[:4] == b"PARE" and b"MRN" not in sealed
    assert not (tmp_path / "hospital-plaintext").exists()


def test_headless_imaging_walkthrough_scores_the_ct_slices(tmp_path: Path, workbench_cli: str):
    result = subprocess.run([workbench_cli, "demo", "--headless", "--walkthrough", "imaging",
                             "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("workbench demo --headless: the imaging walkthrough "
                          "(imaging-demo.ipynb)")
    assert "cells run: 7 of 7" in out
    assert "slices scored: 3 (256x256)" in out
    assert "identifier columns opened: none" in out
    assert ("keys released to the kernel: ct-slices/table-key/clinical, "
            "ct-tissue/file-keyset/main") in out
    assert re.search(r"hospital: publish what the imaging walkthrough needs\s+[0-9.]+ ms", out)
    assert "2 release (sealed approval)" in out
    sealed = (tmp_path / "data" / "ct-slices.sealed.parquet").read_bytes()
    assert sealed[:4] == b"PARE"
    assert not (tmp_path / "imaging-plaintext").exists()


def test_an_unknown_walkthrough_is_refused(workbench_cli: str):
    result = subprocess.run([workbench_cli, "demo", "--headless", "--walkthrough", "radiology"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "argument --walkthrough: invalid choice: 'radiology' (choose from 'healthcare', " \
        "'imaging')" in result.stderr


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_demo_opens_jupyterlab_on_the_notebook_until_interrupted(tmp_path: Path,
                                                                 workbench_cli: str):
    process = subprocess.Popen([workbench_cli, "demo", "--no-browser", "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT)
    try:
        lines, seen = _lines(process.stdout), []
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any("press Ctrl-C to stop" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, "".join(seen)
        text = "".join(seen)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/lab/tree/healthcare-demo\.ipynb\?token=(\S+)",
                        text)
        broker = re.search(r"key broker (http://127\.0\.0\.1:\d+)", text).group(1)
        base, token = url.group(1), url.group(2)
        specs = httpx.get(f"{base}/api/kernelspecs", params={"token": token}, timeout=30).json()
        spec = specs["kernelspecs"]["confidential-python"]["spec"]
        assert spec["display_name"] == "Confidential Python"
        notebook = httpx.get(f"{base}/api/contents/healthcare-demo.ipynb",
                             params={"token": token, "content": 0}, timeout=30)
        assert notebook.status_code == 200
        assert httpx.get(f"{broker}/healthz", timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        while not lines.empty():
            seen.append(lines.get())
        assert "stopping JupyterLab and the key broker" in "".join(seen)
        for address in (base, broker):
            try:
                httpx.get(address, timeout=2)
                raise AssertionError(f"{address} still answers after Ctrl-C")
            except httpx.ConnectError:
                pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
