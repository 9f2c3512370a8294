"""The kernel's command line is the host's and unmeasured: the kernel takes only its
connection file there (``-f PATH`` or ``--ConnectionFileMixin.connection_file=PATH``, or,
when the command line names none, ``WORKBENCH_CONNECTION_FILE``, as under Gramine's fixed
command line) and refuses to start on anything else, naming it.

Real kernels through jupyter_client for the forms jupyter_client passes; the refusal also as
the process itself reports it. What Gramine does with the manifest's fixed command line
(no SGX here) is not exercised: tests/kernel/test_provisioner.py checks the rendered
manifest and the provisioner's command line instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from kernel_helpers import KERNEL_NAME, ROOT, TIMEOUT_S

from workbench.demo.environment import Hospital
from workbench.kernel.cmdline import CONNECTION_FILE_ENV, CommandLineRefused, connection_file
from workbench.kernel.transport import TransportError, server_key_path

REFUSED = ("the Confidential Python kernel takes no command-line argument but its connection "
           "file (-f PATH or --ConnectionFileMixin.connection_file=PATH); refused: ")


@pytest.mark.parametrize(("argv", "environ", "named"), [
    (["-f", "/run/k.json"], {}, "/run/k.json"),
    (["--ConnectionFileMixin.connection_file=/run/k.json"], {}, "/run/k.json"),
    ([], {CONNECTION_FILE_ENV: "/run/env.json"}, "/run/env.json"),
    (["-f", "/run/k.json"], {CONNECTION_FILE_ENV: "/run/env.json"}, "/run/k.json"),
    ([], {}, None),
])
def test_the_connection_file_is_taken(argv: list[str], environ: dict[str, str],
                                      named: str | None) -> None:
    assert connection_file(argv, environ) == named


@pytest.mark.parametrize(("argv", "why"), [
    (["-f", "/run/k.json", "--IPKernelApp.log_level=DEBUG"],
     REFUSED + "'--IPKernelApp.log_level=DEBUG' (the command line is chosen by whoever "
               "starts the kernel and is not measured)"),
    (["--IPKernelApp.quiet=False", "-f", "/run/k.json", "-c", "print(1)"],
     REFUSED + "'--IPKernelApp.quiet=False', '-c', 'print(1)' "),
    (["--IPKernelApp.connection_file=/run/k.json"],
     REFUSED + "'--IPKernelApp.connection_file=/run/k.json' "),
    (["-f=/run/k.json"], REFUSED + "'-f=/run/k.json' "),
    (["--ConnectionFileMixin.connection_file="],
     REFUSED + "'--ConnectionFileMixin.connection_file=' "),
    (["-f"], REFUSED + "-f without a path "),
    (["-f", "/run/a.json", "-f", "/run/b.json"],
     "the command line names the connection file 2 times ('/run/a.json', '/run/b.json'): "
     "name it once"),
])
def test_anything_else_is_refused_by_name(argv: list[str], why: str) -> None:
    with pytest.raises(CommandLineRefused) as refused:
        connection_file(argv, {CONNECTION_FILE_ENV: "/run/env.json"})
    assert str(refused.value).startswith(why)


def test_the_process_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    connection = tmp_path / "kernel-1.json"
    done = subprocess.run([sys.executable, "-m", "workbench.kernel", "-f", str(connection),
                           "--IPKernelApp.log_level=DEBUG"], capture_output=True, text=True,
                          timeout=TIMEOUT_S, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "CommandLineRefused: " + REFUSED + "'--IPKernelApp.log_level=DEBUG' (the command "
        "line is chosen by whoever starts the kernel and is not measured)"]
    assert not connection.exists() and not server_key_path(str(connection)).exists()


def test_a_kernel_given_host_options_does_not_start(site: Hospital, tmp_path: Path) -> None:
    site.repin()
    log = tmp_path / "kernel.log"
    manager = KernelManager(kernel_name=KERNEL_NAME)
    with log.open("ab") as handle, pytest.raises(TransportError, match=r"the kernel exited "
                                                 r"\(status 2\) before publishing"):
        manager.start_kernel(env={**site.kernel_env(), "JUPYTER_PATH": str(ROOT)},
                             stdout=handle, stderr=handle,
                             extra_arguments=["--IPKernelApp.quiet=False",
                                              "--IPKernelApp.log_level=DEBUG"])
    manager.cleanup_resources()
    assert log.read_text().splitlines()[-1] == (
        "CommandLineRefused: " + REFUSED + "'--IPKernelApp.quiet=False', "
        "'--IPKernelApp.log_level=DEBUG' (the command line is chosen by whoever starts the "
        "kernel and is not measured)")


def _kernelspec(tmp_path: Path, argv: list[str]) -> KernelSpecManager:
    kernels = tmp_path / "kernels"
    shutil.copytree(ROOT / "kernels" / KERNEL_NAME, kernels / KERNEL_NAME)
    spec = kernels / KERNEL_NAME / "kernel.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "argv": argv}))
    return KernelSpecManager(kernel_dirs=[str(kernels)])


@pytest.mark.parametrize("form", ["long-option", "environment"])
def test_a_kernel_takes_its_connection_file_in_either_form(site: Hospital, tmp_path: Path,
                                                           form: str) -> None:
    site.repin()
    connection = tmp_path / "runtime" / "kernel-9.json"
    connection.parent.mkdir()
    argv = ["python", "-m", "workbench.kernel"]
    env = {**site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    if form == "long-option":
        argv.append("--ConnectionFileMixin.connection_file={connection_file}")
    else:
        env[CONNECTION_FILE_ENV] = str(connection)
    manager = KernelManager(kernel_name=KERNEL_NAME,
                            kernel_spec_manager=_kernelspec(tmp_path, argv))
    manager.connection_file = str(connection)
    with (tmp_path / "kernel.log").open("ab") as handle:
        manager.start_kernel(env=env, stdout=handle, stderr=handle)
    client = manager.client()
    try:
        client.start_channels()
        client.wait_for_ready(timeout=TIMEOUT_S)
        client.execute("print(6 * 7)")
        while True:
            msg = client.get_iopub_msg(timeout=TIMEOUT_S)
            if msg["msg_type"] == "stream":
                assert msg["content"]["text"] == "42\n"
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
