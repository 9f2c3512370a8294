"""A Confidential Python kernel (or any other) started by a stock jupyter_client
KernelManager, with a client from that manager, as any jupyter_client user starts one."""

from __future__ import annotations

from pathlib import Path

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parents[2]
KERNEL_NAME = "confidential-python"
READY_TIMEOUT_S = 120


class Kernel:
    """A kernel and a client from its manager, as any jupyter_client user starts one."""

    def __init__(self, env: dict[str, str], log: Path, name: str = KERNEL_NAME,
                 **manager_options: object) -> None:
        self.manager = KernelManager(kernel_name=name, **manager_options)
        # Open as long as the kernel lives: a restart launches with the same arguments.
        self._log_handle = log.open("ab")
        self.manager.start_kernel(env={**env, "JUPYTER_PATH": str(ROOT)},
                                  stdout=self._log_handle, stderr=self._log_handle)
        self.log = log
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=READY_TIMEOUT_S)

    def run(self, code: str) -> str:
        """Execute ``code``; its stdout (fails on an error)."""
        out: list[str] = []

        def output(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append(f"ERROR {msg['content']['ename']}: {msg['content']['evalue']}")

        reply = self.client.execute_interactive(code, timeout=READY_TIMEOUT_S,
                                                output_hook=output)
        text = "".join(out)
        assert reply["content"]["status"] == "ok", text
        return text

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
        self._log_handle.close()
