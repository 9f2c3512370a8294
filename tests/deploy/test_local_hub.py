"""``deploy/jupyterhub/local_hub.py``, the documented way to try the hub on one machine: it
starts the demo broker and JupyterHub, says where they are, and stops both on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from workbench.demo.environment import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "jupyterhub" / "local_hub.py"
START_TIMEOUT_S = 300.0


def test_the_local_hub_starts_answers_and_stops(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_KBS")}
    log = tmp_path / "launcher.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(LAUNCHER), "--workdir",
                                    str(tmp_path / "work"), "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ctrl-C stops" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.5)
        said = log.read_text()
        assert f"JupyterHub: http://127.0.0.1:{port}" in said, said
        broker = re.search(r"key broker: (http://127\.0\.0\.1:\d+)", said).group(1)
        assert httpx.get(f"http://127.0.0.1:{port}/hub/api/", timeout=10).status_code == 200
        assert httpx.get(f"{broker}/healthz", timeout=10).status_code == 200
        token = tmp_path / "work" / "hospital" / "admin-token"
        assert token.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "work" / "hospital" / "policy.json").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0, log.read_text()
    assert "stopping JupyterHub and the key broker" in log.read_text()
    for url in (f"http://127.0.0.1:{port}/hub/api/", f"{broker}/healthz"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=5)
