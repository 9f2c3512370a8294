"""What a sealed cell writes below Python (os.system, subprocesses, C code writing to
descriptors 1 and 2) reaches the analyst sealed and never the kernel's stdout/stderr: the
host's log, which the operator reads. The kernel's own log lines still go there.

The kernel is started as Jupyter Server starts it, its output into a log file; once without
pytest's PYTEST_CURRENT_TEST in its environment and once with it (ipykernel leaves the
descriptors alone under pytest, and the environment is the operator's to set).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sealed_helpers import KERNEL_NAME, ROOT, TIMEOUT_S, Started, operator_client, request

from workbench.demo.environment import Hospital
from workbench.kernel.transport import CurveKernelManager

PYTEST_ENV = "PYTEST_CURRENT_TEST"
CELL = (
    "import os, subprocess, sys, time\n"
    "os.system('echo PATIENT Jane Doe MRN-00042 via os.system')\n"
    "subprocess.run(['echo', 'PATIENT John Roe MRN-00043 via subprocess'], stdout=sys.stdout)\n"
    "subprocess.run(['sh', '-c', 'echo PATIENT Al Coe MRN-00045 via a child stderr >&2'])\n"
    "os.write(2, b'PATIENT Ann Poe MRN-00044 via C-level stderr\\n')\n"
    "time.sleep(1)  # the pipes' watchers forward all of it before the cell ends\n"
    "print('done')\n")


def _start_like_a_server(site: Hospital, log: Path, *, under_pytest: bool) -> Started:
    env = {**site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    if under_pytest:
        env[PYTEST_ENV] = "tests/any.py::test_any (call)"
    else:
        env.pop(PYTEST_ENV, None)
    manager = CurveKernelManager(kernel_name=KERNEL_NAME)
    with log.open("ab") as handle:
        manager.start_kernel(env=env, stdout=handle, stderr=handle)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=TIMEOUT_S)
    return Started(manager, client, log)


@pytest.mark.parametrize("under_pytest", [False, True], ids=["as-a-server", "pytest-env"])
def test_fd_level_output_stays_sealed_and_off_the_host_log(site: Hospital, tmp_path: Path,
                                                           under_pytest: bool) -> None:
    site.repin()
    started = _start_like_a_server(site, tmp_path / "kernel.log", under_pytest=under_pytest)
    try:
        analyst = started.analyst(tmp_path)
        analyst.lock()
        run = analyst.execute(CELL)
        assert run.status == "ok", run.reply
        # Captured, not lost: the analyst reads every line, opened from the sealed output.
        for mrn in ("MRN-00042", "MRN-00043"):
            assert mrn in run.text("stdout"), run.outputs
        for mrn in ("MRN-00044", "MRN-00045"):
            assert mrn in run.text("stderr"), run.outputs
        # The kernel's own log still reaches the host: an operator's refused request.
        refused = request(operator_client(started), "execute_request", {
            "code": "1", "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False})
        assert refused["ename"] == "SealedSessionRequired"
    finally:
        started.stop()
    log = started.log.read_text(errors="replace")
    assert "refused execute_request" in log
    leaked = [line for line in log.splitlines() if "PATIENT" in line or "MRN-000" in line]
    assert leaked == []
