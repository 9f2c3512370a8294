"""The Confidential Python kernel: IPython plus an attested session with the key broker."""

from __future__ import annotations

import threading
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.kernel.comm import CommFrontend
from workbench.kernel.state import KernelState, start_state
from workbench.protocol.comm import COMM_TARGET

SUBSHELL_START_TIMEOUT_S = 10.0


def _one_line_error(shell: Any, etype: type, value: BaseException, _tb: Any,
                    tb_offset: int | None = None) -> list[str]:
    """Show a workbench refusal as its message alone: it names the thing and the cause."""
    stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


class ConfidentialKernel(IPythonKernel):
    implementation = "confidential-python"
    implementation_version = __version__

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frontend = CommFrontend()
        # The runtime is resolved and the ephemeral key pair created before any cell runs;
        # the channels' CurveZMQ key (made by the app before the sockets were bound) is bound
        # into every attestation.
        transport_key = getattr(self.parent, "transport_key", b"")
        self.workbench: KernelState = start_state(self.frontend, transport_key=transport_key)
        self.frontend.status = self.workbench.status
        self.frontend.attest = self.workbench.attest
        self.frontend.register(self.comm_manager)
        if self.shell is not None:
            self.shell.set_custom_exc((WorkbenchError,), _one_line_error)

    @property
    def runtime_line(self) -> str:
        runtime = self.workbench.runtime
        caveat = "" if runtime.hardware else " - NOT hardware-protected"
        return f"Confidential Python {__version__}, runtime: {runtime.name}{caveat}"

    @property
    def banner(self) -> str:  # type: ignore[override]
        base = super().banner or ""
        return f"{base}\n{self.runtime_line}\n{self.workbench.runtime.description}\n"

    @property
    def kernel_info(self) -> dict[str, Any]:
        info = super().kernel_info
        runtime = self.workbench.runtime
        info["workbench"] = {"runtime": runtime.name, "tee": self.workbench.status()["tee"],
                             "simulated": not runtime.hardware,
                             "broker": self.workbench.config.broker_url,
                             "comm_target": COMM_TARGET,
                             "transport_key": self.workbench.transport_key.hex(),
                             "identity": self.workbench.identity_source}
        return info

    def start(self) -> None:
        super().start()
        self.frontend.subshell_id = self._private_subshell()

    def _private_subshell(self) -> str | None:
        """A subshell of our own, created on the shell channel thread as ipykernel requires."""
        channel = getattr(self, "shell_channel_thread", None)
        if channel is None:
            self.log.warning("no shell channel thread: release requests cannot be answered "
                             "while a cell runs")
            return None
        created: dict[str, str] = {}
        done = threading.Event()

        def create() -> None:
            try:
                created["id"] = channel.manager._create_subshell()
            finally:
                done.set()

        channel.io_loop.add_callback(create)
        if not done.wait(SUBSHELL_START_TIMEOUT_S) or "id" not in created:
            self.log.warning("could not create the workbench subshell")
            return None
        return created["id"]
