"""Gramine-SGX workers: the kernel's manifest template with the worker module as the fixed,
measured command line, the worker's arguments in the one variable let through. There is
no SGX here: the manifest is rendered with Jinja as gramine-manifest would, the Gramine
tools are recording stand-ins, and the worker's reading of its arguments runs for real."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import jinja2

from workbench.attestation.tee.measure import default_kernels_dir
from workbench.provisioner import gramine
from workbench.scaleout import launch
from workbench.scaleout.worker_args import WORKER_ARGS_ENV

TEMPLATE = default_kernels_dir() / "confidential-python" / gramine.TEMPLATE_NAME
ARGUMENTS = ["--enroll", "http://127.0.0.1:1", "--scheduler", "tls://127.0.0.1:2",
             "--broker", "http://127.0.0.1:3", "--runtime", "gramine-sgx", "--name", "w0"]


class _Gramine:
    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir() -> str:
        return "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"


def _rendered(values: dict[str, str]) -> dict:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)  # noqa: S701 (TOML)
    return tomllib.loads(environment.from_string(TEMPLATE.read_text()).render(
        gramine=_Gramine, **values))


def test_the_worker_enclave_runs_the_worker_module_and_lets_only_its_arguments_in(tmp_path):
    values = gramine.defines(connection_file=str(tmp_path / "cluster"),
                             workbench_home=tmp_path / "home", data_dir=tmp_path / "data",
                             program=launch.WORKER_ENCLAVE)
    loader = _rendered(values)["loader"]
    assert loader["argv"] == [os.path.realpath(sys.executable), "-m",
                              "workbench.scaleout.worker"]
    assert {k for k, v in loader["env"].items() if isinstance(v, dict)} == {WORKER_ARGS_ENV}
    # The kernel's rendering of the same template differs in its command line, so the two
    # enclaves have different measurements.
    kernel = _rendered(gramine.defines(connection_file=str(tmp_path / "k.json"),
                                       workbench_home=tmp_path / "home",
                                       data_dir=tmp_path / "data"))["loader"]
    assert kernel["argv"][1:] == list(gramine.KERNEL_ARGV)


def _recording_tool(directory: Path, name: str, log: Path) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_the_launcher_builds_the_worker_enclave_and_passes_its_arguments_in_the_env(
        tmp_path, monkeypatch):
    tools, log = tmp_path / "bin", tmp_path / "calls.log"
    tools.mkdir()
    for name in ("gramine-manifest", "gramine-sgx-sign"):
        _recording_tool(tools, name, log)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = launch.LAUNCHERS["gramine-sgx"](ARGUMENTS, workdir,
                                             {"WORKBENCH_HOME": str(tmp_path / "home")})
    assert command.argv == ["gramine-sgx", gramine.APP_NAME]  # nothing the host chooses
    assert json.loads(command.env[WORKER_ARGS_ENV]) == ARGUMENTS
    render, sign = log.read_text().splitlines()
    assert "-Dmodule=workbench.scaleout.worker" in render.split()
    assert f"-Dhost_input_env={WORKER_ARGS_ENV}" in render.split()
    assert sign.startswith("gramine-sgx-sign --manifest")


def _worker(env_value: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != WORKER_ARGS_ENV}
    if env_value is not None:
        env[WORKER_ARGS_ENV] = env_value
    return subprocess.run([sys.executable, "-m", "workbench.scaleout.worker"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_worker_without_command_line_reads_its_arguments_from_the_env():
    done = _worker(json.dumps(["--name", "w0"]))  # parsed: argparse names what is missing
    assert done.returncode == 2
    assert "the following arguments are required: --enroll, --scheduler, --broker, " \
           "--runtime" in done.stderr


def test_worker_arguments_that_are_not_a_json_list_of_strings_are_refused():
    done = _worker('{"name": "w0"}')
    assert done.returncode == 2
    assert f"{WORKER_ARGS_ENV} must be a JSON list of strings" in done.stderr
    done = _worker("--name w0")
    assert done.returncode == 2 and f"{WORKER_ARGS_ENV} is not JSON" in done.stderr
