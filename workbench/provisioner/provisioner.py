"""``workbench-confidential``: start Confidential Python under simulated, gramine-sgx, cvm or
azure-cvm.

The runtime comes from the kernelspec's provisioner config (``runtime``, default ``auto``)
unless ``$WORKBENCH_HOME/kernel.toml`` or ``WORKBENCH_KERNEL_RUNTIME`` names one. ``auto``
picks the TEE hardware present; without any it refuses to start unless simulation is
allowed (``allow_simulation`` here or in kernel.toml). The kernel learns its runtime from
``WORKBENCH_KERNEL_RUNTIME`` and states it in its banner and kernel info.

Channels: the kernel serves CurveZMQ with a key pair it makes itself (never the manager's;
see :mod:`workbench.kernel.transport`). The provisioner writes the connection file without
CURVE keys, waits for the kernel to publish its public key, and returns it as the server
key; the manager that started the kernel is made a client of that key (``adopt``). Every
start, restarts included, gets new ports as well as a new key, so Jupyter Server re-opens
its sockets instead of retrying the old key on the old ports.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.provisioning.local_provisioner import LocalPortCache
from traitlets import Bool, Float, Int, Unicode

from workbench.attestation.tee.tpm2_tools import TCTI_ENV
from workbench.errors import WorkbenchError
from workbench.kernel.cmdline import CONNECTION_FILE_ENV
from workbench.kernel.config import config_path, load_kernel_config
from workbench.kernel.runtimes import AUTO, GRAMINE_SGX, Machine, Runtime, resolve_runtime
from workbench.kernel.transport import TransportError, adopt, read_server_key, server_key_path
from workbench.provisioner import gramine

RUNTIME_ENV = "WORKBENCH_KERNEL_RUNTIME"
PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
SERVER_KEY_POLL_S = 0.02


class ConfidentialProvisioner(LocalProvisioner):  # type: ignore[misc]
    runtime = Unicode(AUTO,
                      help="auto, simulated, gramine-sgx, cvm or azure-cvm").tag(config=True)
    allow_simulation = Bool(False,
                            help="let auto use the simulated TEE when no hardware is present"
                            ).tag(config=True)
    gramine_signing_key = Unicode("",
                                  help="enclave signing key for gramine-sgx-sign (default: "
                                       "Gramine's own default key)").tag(config=True)
    gramine_enclave_size = Unicode(gramine.DEFAULT_ENCLAVE_SIZE).tag(config=True)
    gramine_max_threads = Int(gramine.DEFAULT_MAX_THREADS).tag(config=True)
    gramine_log_level = Unicode("error").tag(config=True)
    transport_key_timeout_s = Float(
        120.0, help="how long to wait for the kernel to publish its CurveZMQ public key "
                    "(an enclave takes a while to start)").tag(config=True)

    chosen: Runtime | None = None
    _workdir: Path | None = None

    def choose_runtime(self, environ: Mapping[str, str] | None = None,
                       machine: Machine | None = None) -> Runtime:
        config = load_kernel_config(environ=environ)
        requested = config.runtime if config.runtime != AUTO else self.runtime
        if machine is None and environ is not None:
            # The TPM the kernel will talk to is the one its own environment names.
            machine = Machine(tpm_tcti=environ.get(TCTI_ENV) or None)
        return resolve_runtime(requested,
                               allow_simulation=self.allow_simulation or config.allow_simulation,
                               machine=machine)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        # The kernel's own environment decides (its WORKBENCH_HOME holds kernel.toml).
        chosen = self.choose_runtime(kwargs.get("env", os.environ))
        manager = self.parent
        adopt(manager)
        # No manager-made CURVE pair: the host would know its secret. The kernel makes one.
        manager.curve_publickey = manager.curve_secretkey = None
        kwargs["transport_encryption"] = "disabled"
        self._fresh_ports()
        server_key_path(manager.connection_file).unlink(missing_ok=True)
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"][RUNTIME_ENV] = chosen.name
        # onnxruntime's usage telemetry: off in a confidential kernel (see kernel/__main__).
        kwargs["env"].setdefault("ORT_DISABLE_TELEMETRY", "1")
        if chosen.name == GRAMINE_SGX:
            kwargs = await self._enclave(kwargs)
        self.chosen = chosen
        self.log.info("Confidential Python: starting under runtime %s", chosen.name)
        return kwargs

    def _fresh_ports(self) -> None:
        """Forget the last start's ports (a restart gets new ones, with its new key)."""
        if not self.ports_cached:
            return
        # The old connection file names the old ports; the manager writes it once only.
        self.parent.cleanup_connection_file()
        cache = LocalPortCache.instance()
        for name in PORT_NAMES:
            port = getattr(self.parent, name, 0)
            if port:
                cache.return_port(port)
                setattr(self.parent, name, 0)
        self.ports_cached = False

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict[str, Any]:
        info = await super().launch_kernel(cmd, **kwargs)
        try:
            key = await self._await_server_key()
        except TransportError:
            # A kernel nobody can talk to is useless; do not leave it running.
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
            raise
        info = {**info, "curve_publickey": key.decode("ascii")}
        info.pop("curve_secretkey", None)
        self.connection_info = info
        return info

    async def _await_server_key(self) -> bytes:
        """The public key the kernel publishes once its sockets are bound."""
        path = server_key_path(self.parent.connection_file)
        deadline = time.monotonic() + self.transport_key_timeout_s
        while True:
            key = read_server_key(path)
            if key is not None:
                return key
            code = self.process.poll() if self.process is not None else None
            if code is not None:
                raise TransportError(f"the kernel exited (status {code}) before publishing its "
                                     f"transport key in {path}")
            if time.monotonic() > deadline:
                raise TransportError(f"the kernel did not publish its transport key in {path} "
                                     f"within {self.transport_key_timeout_s:g} s")
            await asyncio.sleep(SERVER_KEY_POLL_S)

    async def _enclave(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        env = kwargs["env"]
        self._fixed_command_line(list(kwargs["cmd"]))
        config = load_kernel_config(environ=env)

        self._workdir = Path(tempfile.mkdtemp(prefix="workbench-gramine-"))
        template = Path(self.kernel_spec.resource_dir) / gramine.TEMPLATE_NAME
        values = gramine.defines(
            connection_file=self.parent.connection_file,
            workbench_home=config_path(env).parent,
            data_dir=config.data_path, log_level=self.gramine_log_level,
            enclave_size=self.gramine_enclave_size, max_threads=self.gramine_max_threads)
        steps = gramine.plan(template, self._workdir, values,
                             host_input=os.path.realpath(self.parent.connection_file),
                             signing_key=self.gramine_signing_key)
        await asyncio.to_thread(gramine.prepare, steps)
        kwargs["cmd"] = steps.run
        kwargs["env"] = {**env, **steps.env}
        kwargs["cwd"] = str(self._workdir)
        return kwargs

    def _fixed_command_line(self, cmd: list[str]) -> None:
        """The enclave runs the manifest's command line; say so rather than drop arguments."""
        # jupyter_client names the connection file by its real path.
        expected = [*gramine.KERNEL_ARGV, "-f", os.path.realpath(self.parent.connection_file)]
        if list(cmd[1:]) != expected:
            raise WorkbenchError(
                "under gramine-sgx the kernel's command line is fixed in the enclave's "
                f"manifest ({' '.join(gramine.KERNEL_ARGV)}, the connection file in "
                f"{CONNECTION_FILE_ENV}); this start asks for {' '.join(cmd[1:])!r} instead: "
                "remove the extra arguments from the kernelspec or the launch")

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        server_key_path(self.parent.connection_file).unlink(missing_ok=True)
        if self._workdir is not None and not restart:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["workbench_runtime"] = self.chosen.name if self.chosen else None
        return info
