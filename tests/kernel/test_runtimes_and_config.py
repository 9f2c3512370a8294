"""Runtime resolution on machines built from directories, and the kernel's settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.errors import InputError
from workbench.kernel.config import KernelConfig, load_kernel_config, write_kernel_config
from workbench.kernel.runtimes import Machine, RuntimeUnavailable, resolve_runtime


def machine(root: Path, *, sgx: bool = False, tsm: bool = False, guest: str = "",
            gramine: bool = True) -> Machine:
    dev = root / "dev"
    dev.mkdir(exist_ok=True)
    if sgx:
        (dev / "sgx_enclave").touch()
    if guest:
        (dev / guest).touch()
    if tsm:
        (root / "tsm" / "report").mkdir(parents=True, exist_ok=True)
    return Machine(dev=dev, tsm=root / "tsm",
                   which=lambda name: f"/usr/bin/{name}" if gramine else None)


@pytest.mark.parametrize("build, expected", [
    ({"sgx": True}, "gramine-sgx"),
    ({"tsm": True, "guest": "tdx_guest"}, "cvm"),
    ({"tsm": True, "guest": "sev-guest"}, "cvm"),
])
def test_auto_picks_the_hardware_present(tmp_path, build, expected):
    chosen = resolve_runtime("auto", allow_simulation=False, machine=machine(tmp_path, **build))
    assert chosen.name == expected and chosen.hardware


def test_auto_without_hardware_needs_simulation_allowed(tmp_path):
    bare = machine(tmp_path)
    assert resolve_runtime("auto", allow_simulation=True, machine=bare).name == "simulated"
    with pytest.raises(RuntimeUnavailable) as refused:
        resolve_runtime("auto", allow_simulation=False, machine=bare)
    assert "gramine-sgx: no SGX device" in str(refused.value)
    assert "cvm: no configfs-tsm interface" in str(refused.value)


@pytest.mark.parametrize("requested, build, reason", [
    ("gramine-sgx", {"sgx": True, "gramine": False}, "gramine-sgx is not installed"),
    ("gramine-sgx", {}, "no SGX device"),
    ("cvm", {"tsm": True}, "not a confidential VM guest"),
    ("cvm", {"guest": "tdx_guest"}, "no configfs-tsm interface"),
])
def test_explicit_hardware_runtime_is_refused_with_its_reason(tmp_path, requested, build,
                                                              reason):
    with pytest.raises(RuntimeUnavailable, match=reason):
        resolve_runtime(requested, allow_simulation=True, machine=machine(tmp_path, **build))


def test_explicit_simulation_and_unknown_names(tmp_path):
    bare = machine(tmp_path)
    assert resolve_runtime("simulated", allow_simulation=False, machine=bare).hardware is False
    with pytest.raises(InputError, match=r"unknown kernel runtime 'sev' \(known: auto, "):
        resolve_runtime("sev", allow_simulation=True, machine=bare)


def test_config_file_then_environment(tmp_path):
    path = write_kernel_config(tmp_path / "kernel.toml", broker_url="http://broker:9",
                               allow_simulation=True, approval_timeout_s=12)
    config = load_kernel_config(path, environ={"WORKBENCH_APPROVAL_TIMEOUT_S": "4",
                                               "WORKBENCH_AUTO_APPROVE": "yes",
                                               "WORKBENCH_DATA_DIR": ""})
    assert config == KernelConfig(broker_url="http://broker:9", allow_simulation=True,
                                  approval_timeout_s=4.0, auto_approve=True)
    assert config.data_path == Path(os.environ["WORKBENCH_HOME"]) / "data"


def test_config_found_through_the_kernels_workbench_home(tmp_path):
    write_kernel_config(tmp_path / "kernel.toml", runtime="cvm")
    assert load_kernel_config(environ={"WORKBENCH_HOME": str(tmp_path)}).runtime == "cvm"


@pytest.mark.parametrize("text, message", [
    ("brokr = 'x'\n", "unknown setting(s): brokr"),
    ("allow_simulation = 'maybe'\n", "'allow_simulation' must be true or false"),
    ("approval_timeout_s = -3\n", "'approval_timeout_s' must be a positive number"),
    ("runtime = 3\n", "'runtime' must be a string"),
    ("runtime = \n", "not valid TOML"),
])
def test_bad_config_files_name_the_setting(tmp_path, text, message):
    path = tmp_path / "kernel.toml"
    path.write_text(text)
    with pytest.raises(InputError) as failed:
        load_kernel_config(path, environ={})
    assert str(failed.value).startswith(f"{path}: ") and message in str(failed.value)


def test_bad_environment_values_name_the_variable(tmp_path):
    with pytest.raises(InputError, match=r"\$WORKBENCH_AUTO_APPROVE: 'auto_approve' must be"):
        load_kernel_config(tmp_path / "none.toml", environ={"WORKBENCH_AUTO_APPROVE": "sure"})
