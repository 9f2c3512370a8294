"""Ending the servers the workbench starts (broker, JupyterLab, hub): politely, then surely."""

from __future__ import annotations

import signal
import subprocess


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM, so a server can shut down its kernels and children, then SIGKILL if it has
    not exited within ``timeout_s``; returns once the process is gone."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
