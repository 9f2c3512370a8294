"""Jupyter Kernel Gateway serving the Confidential Python kernel to remote JupyterLabs.

Run it on the confidential machine (an SGX host with Gramine, or inside a TDX / SEV-SNP
guest) from the environment the workbench is installed in (``make install`` puts the
kernelspec there):

    jupyter kernelgateway --config=deploy/kernel-gateway/kernel_gateway_config.py

JupyterLab, anywhere, connects with ``--gateway-url`` (see jupyter_server_config.py next to
this file). The kernel runs here, under this gateway's provisioner; JupyterLab's server only
relays its messages, and the workbench's server extension re-checks what the kernel reports
without talking to it. Settings come from the environment (``SETTINGS``; docs/deploy.md).
"""

# ``c`` and ``get_config`` are provided by traitlets when the gateway loads this file.
# ruff: noqa: F821

from __future__ import annotations

import os

KERNEL_NAME = "confidential-python"

# variable -> (default (None: required), meaning)
SETTINGS: dict[str, tuple[str | None, str]] = {
    "WORKBENCH_GATEWAY_IP": ("127.0.0.1", "address to listen on"),
    "WORKBENCH_GATEWAY_PORT": ("8888", "port to listen on"),
    "WORKBENCH_GATEWAY_TOKEN": (None, "token every client must present: whoever has it can "
                                      "run code in the gateway's kernels"),
    "WORKBENCH_GATEWAY_KERNELS": (KERNEL_NAME, "comma-separated kernelspecs served; the first "
                                               "is the default"),
    "WORKBENCH_GATEWAY_SSL_CERT": ("", "TLS certificate (serve https)"),
    "WORKBENCH_GATEWAY_SSL_KEY": ("", "TLS key"),
    "WORKBENCH_GATEWAY_CLIENT_CA": ("", "CA whose client certificates are required (mutual TLS)"),
}
# The gateway's own variables its kernels inherit (everything else is withheld; a client
# may add only KERNEL_* variables). The analyst's confirmation (WORKBENCH_AUTO_APPROVE) is
# the analyst's to give, so the gateway never passes it on.
KERNEL_ENVIRONMENT = (
    "WORKBENCH_HOME", "WORKBENCH_KBS_URL", "WORKBENCH_DATA_DIR", "WORKBENCH_KERNEL_RUNTIME",
    "WORKBENCH_ALLOW_SIMULATION", "WORKBENCH_APPROVAL_TIMEOUT_S",
    "WORKBENCH_OWNER_APPROVAL_WAIT_S", "WORKBENCH_BROKER_TIMEOUT_S",
    "HOME", "LANG", "LC_ALL", "TMPDIR",
)


class GatewayConfigError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"kernel_gateway_config.py: {message}")


def setting(name: str, environ: dict[str, str]) -> str:
    default, meaning = SETTINGS[name]
    value = environ.get(name, "") or default
    if value is None:
        raise GatewayConfigError(f"{name} must be set ({meaning})")
    return value


def configure(c, environ: dict[str, str]) -> None:
    c.KernelGatewayApp.ip = setting("WORKBENCH_GATEWAY_IP", environ)
    port = setting("WORKBENCH_GATEWAY_PORT", environ)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise GatewayConfigError(f"WORKBENCH_GATEWAY_PORT must be a TCP port number, not "
                                 f"'{port}'")
    c.KernelGatewayApp.port = int(port)
    c.KernelGatewayApp.port_retries = 0
    c.KernelGatewayApp.auth_token = setting("WORKBENCH_GATEWAY_TOKEN", environ)
    kernels = [k for k in setting("WORKBENCH_GATEWAY_KERNELS", environ).split(",") if k]
    c.KernelSpecManager.allowed_kernelspecs = set(kernels)
    c.KernelGatewayApp.default_kernel_name = kernels[0]
    c.KernelGatewayApp.env_process_whitelist = list(KERNEL_ENVIRONMENT)
    # JupyterLab lists kernels (GET /api/kernels, /api/sessions) for its status and its
    # running-kernels panel; the gateway refuses that (403) unless allowed. Every client
    # already holds the gateway's token, which lets it start and drive kernels anyway.
    c.JupyterWebsocketPersonality.list_kernels = True
    # Clients pass no variables of their own beyond KERNEL_* (not the analyst's approval).
    c.JupyterWebsocketPersonality.env_whitelist = []
    cert, key = (setting("WORKBENCH_GATEWAY_SSL_CERT", environ),
                 setting("WORKBENCH_GATEWAY_SSL_KEY", environ))
    if bool(cert) != bool(key):
        raise GatewayConfigError("WORKBENCH_GATEWAY_SSL_CERT and WORKBENCH_GATEWAY_SSL_KEY "
                                 "go together (set both or neither)")
    if cert:
        c.KernelGatewayApp.certfile, c.KernelGatewayApp.keyfile = cert, key
    client_ca = setting("WORKBENCH_GATEWAY_CLIENT_CA", environ)
    if client_ca:
        c.KernelGatewayApp.client_ca = client_ca


if "get_config" in globals():
    configure(get_config(), dict(os.environ))
