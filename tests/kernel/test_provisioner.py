"""The provisioner: runtime choice at kernel start, refusals, the kernel's self-description,
and the Gramine-SGX steps (manifest rendering and command lines).

Not exercised here, because this machine has no SGX: running gramine-manifest's own
Jinja helpers, gramine-sgx-sign, and a kernel inside an enclave. The template is rendered
with stand-ins for Gramine's two helpers and parsed as TOML; the three command lines are
checked, and run against recording stand-ins for the Gramine tools.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning import KernelProvisionerFactory
from kernel_helpers import ROOT, RunningKernel

from workbench.kernel.cmdline import CONNECTION_FILE_ENV
from workbench.kernel.runtimes import AUTO_ORDER, RUNTIMES, Machine, RuntimeUnavailable
from workbench.provisioner import gramine
from workbench.provisioner.provisioner import ConfidentialProvisioner

KERNELSPEC = ROOT / "kernels" / "confidential-python"


def _no_hardware() -> None:
    present = [name for name in AUTO_ORDER if RUNTIMES[name].probe(Machine()) is None]
    if present:
        pytest.skip(f"this machine has TEE hardware ({', '.join(present)}): auto would use it")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "WORKBENCH_HOME": str(home), "JUPYTER_PATH": str(ROOT), **extra}
    for name in ("WORKBENCH_ALLOW_SIMULATION", "WORKBENCH_KERNEL_RUNTIME"):
        if name not in extra:
            env.pop(name, None)
    return env


def test_the_kernelspec_names_the_registered_provisioner():
    spec = KernelSpecManager(kernel_dirs=[str(KERNELSPEC.parent)]).get_kernel_spec(
        "confidential-python")
    assert spec.display_name == "Confidential Python"
    assert spec.metadata["kernel_provisioner"]["provisioner_name"] == "workbench-confidential"
    assert spec.metadata["workbench"]["confidential"] is True
    assert KernelProvisionerFactory.instance().is_provisioner_available(spec)
    assert {"logo-32x32.png", "logo-64x64.png", "logo-svg.svg",
            gramine.TEMPLATE_NAME} <= {p.name for p in KERNELSPEC.iterdir()}


def test_auto_refuses_to_start_without_hardware_or_allowed_simulation(tmp_path):
    _no_hardware()
    manager = KernelManager(kernel_name="confidential-python")
    with pytest.raises(RuntimeUnavailable) as refused:
        manager.start_kernel(env=_env(tmp_path))
    message = str(refused.value)
    assert "no TEE hardware found (gramine-sgx: no SGX device" in message
    assert "cvm: no configfs-tsm interface" in message
    assert "set allow_simulation = true in $WORKBENCH_HOME/kernel.toml" in message
    assert not manager.has_kernel


@pytest.mark.parametrize("runtime, reason", [
    ("gramine-sgx", "no SGX device"),
    ("cvm", "no configfs-tsm interface"),
])
def test_asking_for_hardware_that_is_absent_never_falls_back(tmp_path, runtime, reason):
    if RUNTIMES[runtime].probe(Machine()) is None:
        pytest.skip(f"this machine can run {runtime}")
    (tmp_path / "kernel.toml").write_text(f'runtime = "{runtime}"\nallow_simulation = true\n')
    manager = KernelManager(kernel_name="confidential-python")
    with pytest.raises(RuntimeUnavailable) as refused:
        manager.start_kernel(env=_env(tmp_path))
    assert f"kernel runtime '{runtime}' was asked for, but {reason}" in str(refused.value)
    assert "never falls back to simulation" in str(refused.value)


def test_allowed_simulation_starts_a_kernel_that_says_so(tmp_path):
    _no_hardware()
    kernel = RunningKernel(_env(tmp_path, WORKBENCH_ALLOW_SIMULATION="1"), tmp_path / "log")
    try:
        info = kernel.client.kernel_info(reply=True)["content"]
        assert info["implementation"] == "confidential-python"
        assert info["workbench"]["runtime"] == "simulated"
        assert info["workbench"]["simulated"] is True
        assert "runtime: simulated - NOT hardware-protected" in info["banner"]
        assert "kernel subshells" in info["supported_features"]
        outcome = kernel.execute("import os\nprint(os.environ['WORKBENCH_KERNEL_RUNTIME'], "
                                 "os.environ['ORT_DISABLE_TELEMETRY'])")
        assert outcome.stdout.split() == ["simulated", "1"]
    finally:
        kernel.shutdown()


def test_provisioner_reads_the_kernels_own_environment(tmp_path):
    (tmp_path / "kernel.toml").write_text('runtime = "simulated"\n')
    chosen = ConfidentialProvisioner().choose_runtime({"WORKBENCH_HOME": str(tmp_path)})
    assert chosen.name == "simulated"
    with pytest.raises(RuntimeUnavailable):
        ConfidentialProvisioner(runtime="cvm").choose_runtime(
            {"WORKBENCH_HOME": str(tmp_path / "empty")}, Machine(tsm=tmp_path / "no-tsm"))


class _Gramine:
    """Stand-in for Gramine's two helpers, as gramine-manifest defines them."""

    libos = "/usr/lib/x86_64-linux-gnu/gramine/libsysdb.so"

    @staticmethod
    def runtimedir() -> str:
        return "/usr/lib/x86_64-linux-gnu/gramine/runtime/glibc"


def _values(tmp_path: Path) -> dict[str, str]:
    return gramine.defines(connection_file=str(tmp_path / "runtime" / "kernel-1.json"),
                           workbench_home=tmp_path / "home", data_dir=tmp_path / "data")


def test_manifest_template_renders_to_a_gramine_manifest(tmp_path):
    import jinja2

    values = _values(tmp_path)
    # A TOML manifest, not HTML: nothing to escape (as in gramine-manifest itself).
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(  # noqa: S701
        (KERNELSPEC / gramine.TEMPLATE_NAME).read_text()).render(gramine=_Gramine, **values)
    manifest = tomllib.loads(text)
    assert manifest["libos"]["entrypoint"] == os.path.realpath(sys.executable)
    assert manifest["sgx"]["debug"] is False and manifest["sgx"]["remote_attestation"] == "dcap"
    assert manifest["loader"]["env"]["WORKBENCH_KERNEL_RUNTIME"] == "gramine-sgx"
    trusted, allowed = manifest["sgx"]["trusted_files"], manifest["sgx"]["allowed_files"]
    assert f"file:{values['source_dir']}/workbench/" in trusted
    assert f"file:{values['site_packages']}/" in trusted
    assert f"file:{tmp_path / 'data'}/" in allowed and f"file:{tmp_path / 'runtime'}/" in allowed
    assert not any(str(tmp_path / "data") in t for t in trusted)
    assert {"type": "tmpfs", "path": "/tmp"} in manifest["fs"]["mounts"]
    # The command line is the manifest's, measured: the host passes only the connection
    # file's path, in the one variable let through.
    loader = manifest["loader"]
    assert loader["argv"] == [os.path.realpath(sys.executable), *gramine.KERNEL_ARGV]
    assert not {"insecure__use_cmdline_argv", "argv_src_file", "insecure__use_host_env",
                "env_src_file"} & set(loader)
    passed_through = {k for k, v in loader["env"].items() if isinstance(v, dict)}
    assert passed_through == {CONNECTION_FILE_ENV}
    assert loader["env"][CONNECTION_FILE_ENV] == {"passthrough": True}


def test_gramine_command_lines(tmp_path):
    steps = gramine.plan(KERNELSPEC / gramine.TEMPLATE_NAME, tmp_path, {"a": "1", "b": "2"},
                         host_input="/run/k.json", signing_key="/k.pem")
    assert steps.render == ["gramine-manifest", "-Da=1", "-Db=2",
                            str(KERNELSPEC / gramine.TEMPLATE_NAME),
                            str(tmp_path / "confidential-python.manifest")]
    assert steps.sign == ["gramine-sgx-sign", "--manifest",
                          str(tmp_path / "confidential-python.manifest"), "--output",
                          str(tmp_path / "confidential-python.manifest.sgx"), "--key", "/k.pem"]
    assert steps.run == ["gramine-sgx", "confidential-python"]
    assert steps.env == {CONNECTION_FILE_ENV: "/run/k.json"}


def test_missing_gramine_tools_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    steps = gramine.plan(KERNELSPEC / gramine.TEMPLATE_NAME, tmp_path, {},
                         host_input="/run/k.json")
    with pytest.raises(Exception, match="cannot render the manifest: gramine-manifest is "
                                        "not installed"):
        gramine.prepare(steps)


def _recording_tool(directory: Path, name: str, log: Path, fail: bool = False) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {log}\n"
                      + ("echo 'error: enclave size too small' >&2\nexit 3\n" if fail else ""))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def _gramine_provisioner(tmp_path: Path, monkeypatch, number: int
                         ) -> tuple[ConfidentialProvisioner, KernelManager, Path]:
    """A provisioner of kernel ``number`` with recording stand-ins for Gramine's tools on
    PATH; returns it, its kernel manager and the tools' call log."""
    tools, log = tmp_path / "bin", tmp_path / "calls.log"
    tools.mkdir()
    for name in ("gramine-manifest", "gramine-sgx-sign"):
        _recording_tool(tools, name, log)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    spec = KernelSpecManager(kernel_dirs=[str(KERNELSPEC.parent)]).get_kernel_spec(
        "confidential-python")
    manager = KernelManager(kernel_name="confidential-python")
    manager.connection_file = str(tmp_path / "runtime" / f"kernel-{number}.json")
    provisioner = ConfidentialProvisioner(kernel_id=f"k{number}", kernel_spec=spec,
                                          parent=manager)
    return provisioner, manager, log


def test_enclave_launch_renders_signs_and_wraps_the_kernel(tmp_path, monkeypatch):
    provisioner, manager, log = _gramine_provisioner(tmp_path, monkeypatch, 7)
    kwargs = {"cmd": [sys.executable, "-m", "workbench.kernel", "-f",
                      os.path.realpath(manager.connection_file)],
              "env": {"WORKBENCH_HOME": str(tmp_path / "home")}}
    result = asyncio.run(provisioner._enclave(kwargs))
    calls = log.read_text().splitlines()
    assert calls[0].startswith("gramine-manifest -Darch_libdir=")
    assert f"-Dconnection_dir={tmp_path / 'runtime'}" in calls[0]
    assert calls[0].endswith(f"{KERNELSPEC / gramine.TEMPLATE_NAME} "
                             f"{result['cwd']}/confidential-python.manifest")
    assert calls[1].startswith("gramine-sgx-sign --manifest")
    assert result["cmd"] == ["gramine-sgx", "confidential-python"]
    assert result["env"][CONNECTION_FILE_ENV] == os.path.realpath(manager.connection_file)
    assert result["env"]["WORKBENCH_HOME"] == str(tmp_path / "home")
    asyncio.run(provisioner.cleanup())
    assert not Path(result["cwd"]).exists()


def test_extra_kernel_arguments_are_refused_under_gramine(tmp_path, monkeypatch):
    provisioner, manager, log = _gramine_provisioner(tmp_path, monkeypatch, 8)
    kwargs = {"cmd": [sys.executable, "-m", "workbench.kernel", "-f",
                      os.path.realpath(manager.connection_file), "--IPKernelApp.log_level=10"],
              "env": {"WORKBENCH_HOME": str(tmp_path / "home")}}
    with pytest.raises(Exception, match=r"under gramine-sgx the kernel's command line is "
                                        r"fixed in the enclave's manifest .*"
                                        r"--IPKernelApp\.log_level=10"):
        asyncio.run(provisioner._enclave(kwargs))
    assert not log.exists()  # refused before anything was rendered or signed


def test_a_failing_gramine_step_is_reported_with_its_output(tmp_path, monkeypatch):
    tools, log = tmp_path / "bin", tmp_path / "calls.log"
    tools.mkdir()
    _recording_tool(tools, "gramine-manifest", log)
    _recording_tool(tools, "gramine-sgx-sign", log, fail=True)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    steps = gramine.plan(KERNELSPEC / gramine.TEMPLATE_NAME, tmp_path, {},
                         host_input="/run/k.json")
    with pytest.raises(Exception) as failed:
        gramine.prepare(steps)
    assert str(failed.value) == ("cannot sign the enclave: gramine-sgx-sign exited 3 "
                                 "(error: enclave size too small)")


def test_install_command_writes_the_kernelspec(tmp_path, workbench_cli):
    import subprocess

    done = subprocess.run([workbench_cli, "kernel", "install", "--prefix", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "share" / "jupyter" / "kernels" / "confidential-python"
    assert json.loads((installed / "kernel.json").read_text()) == json.loads(
        (KERNELSPEC / "kernel.json").read_text())
    assert (installed / gramine.TEMPLATE_NAME).is_file()
