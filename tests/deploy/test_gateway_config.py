"""deploy/kernel-gateway: the gateway's and JupyterLab's configuration from the environment,
and each refusal with its reason."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from workbench.kernel.config import SETTINGS as KERNEL_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "deploy" / "kernel-gateway" / "kernel_gateway_config.py"
LAB = ROOT / "deploy" / "kernel-gateway" / "jupyter_server_config.py"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"workbench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configured(path: Path, env: dict[str, str]) -> Config:
    c = Config()
    load(path).configure(c, env)
    return c


def test_the_gateway_serves_the_confidential_kernel_behind_a_token():
    c = configured(GATEWAY, {"WORKBENCH_GATEWAY_TOKEN": "s3cret"})
    assert c.KernelGatewayApp.ip == "127.0.0.1"
    assert c.KernelGatewayApp.port == 8888
    assert c.KernelGatewayApp.auth_token == "s3cret"
    assert c.KernelSpecManager.allowed_kernelspecs == {"confidential-python"}
    assert c.KernelGatewayApp.default_kernel_name == "confidential-python"
    assert c.JupyterWebsocketPersonality.list_kernels is True
    assert c.JupyterWebsocketPersonality.env_whitelist == []
    assert "certfile" not in c.KernelGatewayApp


def test_kernels_inherit_every_kernel_setting_but_the_analysts_approval():
    whitelist = configured(GATEWAY, {"WORKBENCH_GATEWAY_TOKEN": "t"}
                           ).KernelGatewayApp.env_process_whitelist
    variables = {variable for _kind, variable, _meaning in KERNEL_SETTINGS.values()}
    assert variables - set(whitelist) == {"WORKBENCH_AUTO_APPROVE"}
    assert "WORKBENCH_HOME" in whitelist


def test_the_gateway_with_tls_and_client_certificates():
    c = configured(GATEWAY, {"WORKBENCH_GATEWAY_TOKEN": "t", "WORKBENCH_GATEWAY_IP": "10.0.0.5",
                             "WORKBENCH_GATEWAY_SSL_CERT": "/tls/gw.pem",
                             "WORKBENCH_GATEWAY_SSL_KEY": "/tls/gw.key",
                             "WORKBENCH_GATEWAY_CLIENT_CA": "/tls/labs-ca.pem",
                             "WORKBENCH_GATEWAY_KERNELS": "confidential-python,python3"})
    assert (c.KernelGatewayApp.certfile, c.KernelGatewayApp.keyfile) == ("/tls/gw.pem",
                                                                         "/tls/gw.key")
    assert c.KernelGatewayApp.client_ca == "/tls/labs-ca.pem"
    assert c.KernelSpecManager.allowed_kernelspecs == {"confidential-python", "python3"}


@pytest.mark.parametrize(("env", "reason"), [
    ({}, "WORKBENCH_GATEWAY_TOKEN must be set (token every client must present"),
    ({"WORKBENCH_GATEWAY_TOKEN": "t", "WORKBENCH_GATEWAY_PORT": "http"},
     "WORKBENCH_GATEWAY_PORT must be a TCP port number, not 'http'"),
    ({"WORKBENCH_GATEWAY_TOKEN": "t", "WORKBENCH_GATEWAY_SSL_CERT": "/tls/gw.pem"},
     "WORKBENCH_GATEWAY_SSL_CERT and WORKBENCH_GATEWAY_SSL_KEY go together"),
])
def test_gateway_refusals_name_the_setting(env, reason):
    with pytest.raises(SystemExit) as refused:
        configured(GATEWAY, env)
    assert str(refused.value).startswith(f"kernel_gateway_config.py: {reason}")


def test_jupyterlab_side_needs_the_gateways_token():
    with pytest.raises(SystemExit) as refused:
        configured(LAB, {"WORKBENCH_GATEWAY_URL": "https://gw.example:8888"})
    assert str(refused.value).startswith("jupyter_server_config.py: WORKBENCH_GATEWAY_TOKEN "
                                         "must be set")
    c = configured(LAB, {"WORKBENCH_GATEWAY_URL": "https://gw.example:8888",
                         "WORKBENCH_GATEWAY_TOKEN": "t", "WORKBENCH_GATEWAY_CA": "/tls/ca.pem"})
    assert c.GatewayClient.url == "https://gw.example:8888"
    assert c.GatewayClient.auth_token == "t"
    assert c.GatewayClient.ca_certs == "/tls/ca.pem"
    assert c.MappingKernelManager.default_kernel_name == "confidential-python"


def test_the_gateway_process_stops_with_the_reason(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "kernel_gateway", f"--config={GATEWAY}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "kernel_gateway_config.py: WORKBENCH_GATEWAY_TOKEN must be set" in done.stderr
