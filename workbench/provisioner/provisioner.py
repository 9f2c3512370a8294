"""``workbench-confidential``: start Confidential Python under simulated, gramine-sgx or cvm.

The runtime comes from the kernelspec's provisioner config (``runtime``, default ``auto``)
unless ``$WORKBENCH_HOME/kernel.toml`` or ``WORKBENCH_KERNEL_RUNTIME`` names one. ``auto``
picks the TEE hardware present; without any it refuses to start unless simulation is
allowed (``allow_simulation`` here or in kernel.toml). The kernel learns its runtime from
``WORKBENCH_KERNEL_RUNTIME`` and states it in its banner and kernel info.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Int, Unicode

from workbench.kernel.config import config_path, load_kernel_config
from workbench.kernel.runtimes import AUTO, GRAMINE_SGX, Machine, Runtime, resolve_runtime
from workbench.provisioner import gramine

RUNTIME_ENV = "WORKBENCH_KERNEL_RUNTIME"


class ConfidentialProvisioner(LocalProvisioner):  # type: ignore[misc]
    runtime = Unicode(AUTO,
                      help="auto, simulated, gramine-sgx or cvm").tag(config=True)
    allow_simulation = Bool(False,
                            help="let auto use the simulated TEE when no hardware is present"
                            ).tag(config=True)
    gramine_signing_key = Unicode("",
                                  help="enclave signing key for gramine-sgx-sign (default: "
                                       "Gramine's own default key)").tag(config=True)
    gramine_enclave_size = Unicode(gramine.DEFAULT_ENCLAVE_SIZE).tag(config=True)
    gramine_max_threads = Int(gramine.DEFAULT_MAX_THREADS).tag(config=True)
    gramine_log_level = Unicode("error").tag(config=True)

    chosen: Runtime | None = None
    _workdir: Path | None = None

    def choose_runtime(self, environ: Mapping[str, str] | None = None,
                       machine: Machine | None = None) -> Runtime:
        config = load_kernel_config(environ=environ)
        requested = config.runtime if config.runtime != AUTO else self.runtime
        return resolve_runtime(requested,
                               allow_simulation=self.allow_simulation or config.allow_simulation,
                               machine=machine)

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        # The kernel's own environment decides (its WORKBENCH_HOME holds kernel.toml).
        chosen = self.choose_runtime(kwargs.get("env", os.environ))
        kwargs = await super().pre_launch(**kwargs)
        kwargs["env"][RUNTIME_ENV] = chosen.name
        # onnxruntime's usage telemetry: off in a confidential kernel (see kernel/__main__).
        kwargs["env"].setdefault("ORT_DISABLE_TELEMETRY", "1")
        if chosen.name == GRAMINE_SGX:
            kwargs = await self._enclave(kwargs)
        self.chosen = chosen
        self.log.info("Confidential Python: starting under runtime %s", chosen.name)
        return kwargs

    async def _enclave(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        env = kwargs["env"]
        config = load_kernel_config(environ=env)

        self._workdir = Path(tempfile.mkdtemp(prefix="workbench-gramine-"))
        template = Path(self.kernel_spec.resource_dir) / gramine.TEMPLATE_NAME
        values = gramine.defines(
            connection_file=self.parent.connection_file,
            workbench_home=config_path(env).parent,
            data_dir=config.data_path, log_level=self.gramine_log_level,
            enclave_size=self.gramine_enclave_size, max_threads=self.gramine_max_threads)
        steps = gramine.plan(template, self._workdir, values, list(kwargs["cmd"][1:]),
                             signing_key=self.gramine_signing_key)
        await asyncio.to_thread(gramine.prepare, steps)
        kwargs["cmd"] = steps.run
        kwargs["cwd"] = str(self._workdir)
        return kwargs

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if self._workdir is not None and not restart:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        info["workbench_runtime"] = self.chosen.name if self.chosen else None
        return info
