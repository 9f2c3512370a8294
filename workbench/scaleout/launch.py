"""How a worker process starts under each runtime: one row per runtime of the kernel's table.

The worker runs the same installed code as the kernel, so under the simulated TEE it
measures the same, and a policy that pins the kernel's measurement admits it. In a
confidential VM (``cvm``, ``azure-cvm``) the VM is the TEE and the worker is a process in
it, attesting through the same provider as the kernel; under ``gramine-sgx`` it runs in its
own enclave from the kernelspec's manifest template (the kernel's own enclave build).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.attestation.tee.measure import default_kernels_dir
from workbench.kernel.runtimes import AZURE_CVM, CVM, GRAMINE_SGX, SIMULATED, Runtime
from workbench.provisioner import gramine
from workbench.scaleout import worker_args

WORKER_MODULE = "workbench.scaleout.worker"
# Numeric libraries get one thread each: one worker is one core's worth of work.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "ORT_DISABLE_TELEMETRY": "1"}


# The worker's enclave: the kernel's template with the worker module as its fixed command
# line (so its own MRENCLAVE), its arguments in the one variable the manifest lets through.
WORKER_ENCLAVE = gramine.EnclaveProgram(WORKER_MODULE, worker_args.WORKER_ARGS_ENV)


@dataclass(frozen=True)
class WorkerCommand:
    argv: list[str]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


def _process(arguments: list[str], _workdir: Path, _env: dict[str, str]) -> WorkerCommand:
    return WorkerCommand([sys.executable, "-m", WORKER_MODULE, *arguments])


def _enclave(arguments: list[str], workdir: Path, env: dict[str, str]) -> WorkerCommand:
    template = default_kernels_dir() / "confidential-python" / gramine.TEMPLATE_NAME
    home = Path(env.get("WORKBENCH_HOME") or Path.home() / ".workbench")
    values = gramine.defines(connection_file=str(workdir / "cluster"), workbench_home=home,
                             data_dir=Path(env.get("WORKBENCH_DATA_DIR") or home / "data"),
                             program=WORKER_ENCLAVE)
    steps = gramine.plan(template, workdir, values, host_input=worker_args.encode(arguments))
    gramine.prepare(steps)
    return WorkerCommand(steps.run, workdir, steps.env)


LAUNCHERS: dict[str, Callable[[list[str], Path, dict[str, str]], WorkerCommand]] = {
    SIMULATED: _process, CVM: _process, AZURE_CVM: _process, GRAMINE_SGX: _enclave}


def start_worker(runtime: Runtime, arguments: list[str], log: Path) -> subprocess.Popen:
    """Start one worker process under ``runtime``; its output goes to ``log``."""
    env = {**os.environ, **THREAD_ENV}
    workdir = Path(tempfile.mkdtemp(prefix="workbench-worker-"))
    command = LAUNCHERS[runtime.name](arguments, workdir, env)
    with log.open("ab") as handle:
        return subprocess.Popen(command.argv, cwd=command.cwd or workdir,
                                env={**env, **command.env},
                                stdin=subprocess.DEVNULL, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def start_scheduler(issued: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Start the scheduler; hand it its PEMs on stdin; return it and its address."""
    with log.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "workbench.scaleout.scheduler"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=handle, text=True, start_new_session=True)
    assert process.stdin is not None and process.stdout is not None
    import json

    process.stdin.write(json.dumps(issued) + "\n")
    process.stdin.flush()
    address = process.stdout.readline().strip()
    if not address.startswith("tls://"):
        process.kill()
        process.wait()
        raise RuntimeError(f"the scheduler did not start (see {log}): "
                           f"{log.read_text()[-500:]}")
    return process, address
