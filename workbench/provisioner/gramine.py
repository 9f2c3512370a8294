"""Gramine-SGX: render the kernel's manifest, sign it, and the command that runs the enclave.

The template (``gramine.manifest.template`` in the kernelspec directory) uses Gramine's own
Jinja helpers (``gramine.libos``, ``gramine.runtimedir()``) plus the values below, passed
to ``gramine-manifest`` as ``-D`` defines. Every step is a command line built here, so what
would run can be shown and tested on machines without SGX.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.kernel.cmdline import CONNECTION_FILE_ENV

TEMPLATE_NAME = "gramine.manifest.template"
APP_NAME = "confidential-python"


@dataclass(frozen=True)
class EnclaveProgram:
    """What one enclave built from the template runs: the module its fixed command line
    names (``loader.argv``, measured, so each program has its own MRENCLAVE) and the one
    environment variable the host may set, which carries its per-start input."""

    module: str
    host_input_env: str

    @property
    def argv(self) -> tuple[str, ...]:
        return ("-m", self.module)


KERNEL = EnclaveProgram("workbench.kernel", CONNECTION_FILE_ENV)
# The kernel's arguments after the interpreter, as the manifest fixes them.
KERNEL_ARGV = KERNEL.argv
SIGN_TIMEOUT_S = 1800
# Defaults a site can override through the provisioner's configuration.
DEFAULT_ENCLAVE_SIZE = "8G"
DEFAULT_MAX_THREADS = 64


@dataclass(frozen=True)
class GraminePlan:
    workdir: Path
    render: list[str]
    sign: list[str]
    run: list[str]
    # What ``run`` needs in its environment: the program's per-start input (the manifest
    # passes this one variable through; its command line is fixed).
    env: dict[str, str]

    @property
    def manifest(self) -> Path:
        return self.workdir / f"{APP_NAME}.manifest"


def arch_libdir() -> str:
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    return f"/lib/{multiarch}"


def defines(*, connection_file: str, workbench_home: Path, data_dir: Path,
            log_level: str = "error", enclave_size: str = DEFAULT_ENCLAVE_SIZE,
            max_threads: int = DEFAULT_MAX_THREADS, edmm: bool = False,
            program: EnclaveProgram = KERNEL) -> dict[str, str]:
    """The values the template needs, for this interpreter and this ``program``."""
    import workbench

    source_dir = Path(workbench.__file__).resolve().parent.parent
    return {
        "entrypoint": os.path.realpath(sys.executable),
        "python_home": sys.base_prefix,
        "venv": sys.prefix,
        "site_packages": sysconfig.get_paths()["purelib"],
        "source_dir": str(source_dir),
        "arch_libdir": arch_libdir(),
        "connection_dir": str(Path(connection_file).resolve().parent),
        "data_dir": str(data_dir),
        "workbench_home": str(workbench_home),
        "log_level": log_level,
        "enclave_size": enclave_size,
        "max_threads": str(max_threads),
        "threads": str(max(1, (os.cpu_count() or 1))),
        "edmm": "true" if edmm else "false",
        "module": program.module,
        "host_input_env": program.host_input_env,
    }


def plan(template: Path, workdir: Path, values: dict[str, str], *, host_input: str,
         signing_key: str = "") -> GraminePlan:
    """The three command lines: render the manifest, sign it, run the program in the enclave.

    The enclave's command line is the manifest's (``loader.argv``, measured): ``run`` adds
    no argument, and the program finds ``host_input`` (the kernel: its connection file's
    path) in the one variable the manifest lets through (``values["host_input_env"]``).
    """
    manifest = workdir / f"{APP_NAME}.manifest"
    render = ["gramine-manifest", *(f"-D{k}={v}" for k, v in sorted(values.items())),
              str(template), str(manifest)]
    sign = ["gramine-sgx-sign", "--manifest", str(manifest),
            "--output", str(workdir / f"{APP_NAME}.manifest.sgx")]
    if signing_key:
        sign += ["--key", signing_key]
    env_name = values.get("host_input_env", KERNEL.host_input_env)
    return GraminePlan(workdir, render, sign, ["gramine-sgx", APP_NAME],
                       {env_name: host_input})


def prepare(steps: GraminePlan) -> None:
    """Render and sign; a failure names the step and Gramine's own last words."""
    for what, command in (("render the manifest", steps.render), ("sign the enclave",
                                                                   steps.sign)):
        try:
            done = subprocess.run(command, cwd=steps.workdir, capture_output=True, text=True,
                                  timeout=SIGN_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise WorkbenchError(f"cannot {what}: {command[0]} is not installed") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WorkbenchError(f"cannot {what}: {command[0]} exited {done.returncode} "
                                 f"({last[0]})")
