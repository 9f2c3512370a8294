"""JupyterLab (or any Jupyter Server) using a Kernel Gateway for its kernels.

    WORKBENCH_GATEWAY_TOKEN=... WORKBENCH_KBS_URL=https://broker.example \\
        jupyter lab --config=deploy/kernel-gateway/jupyter_server_config.py \\
                    --gateway-url=https://gateway.example:8888

Kernels then start and run on the gateway's machine; this server relays their messages. The
workbench's server extension still checks every attestation report itself (it needs the
broker's URL or pinned keys, never access to the kernel's ZMQ ports).
"""

# ``c`` and ``get_config`` are provided by traitlets when Jupyter Server loads this file.
# ruff: noqa: F821

from __future__ import annotations

import os

# A confidential kernel's start includes choosing its runtime (and, under Gramine, signing
# an enclave), slower than a plain kernel: give the gateway time to answer.
REQUEST_TIMEOUT_S = 180.0
KERNEL_NAME = "confidential-python"
CONNECT_TIMEOUT_S = 60.0


class GatewayClientConfigError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"jupyter_server_config.py: {message}")


def configure(c, environ: dict[str, str]) -> None:
    if environ.get("WORKBENCH_GATEWAY_URL"):
        c.GatewayClient.url = environ["WORKBENCH_GATEWAY_URL"]
    token = environ.get("WORKBENCH_GATEWAY_TOKEN", "")
    if not token:
        raise GatewayClientConfigError("WORKBENCH_GATEWAY_TOKEN must be set (the token the "
                                       "Kernel Gateway was started with)")
    c.GatewayClient.auth_token = token
    c.GatewayClient.request_timeout = REQUEST_TIMEOUT_S
    # Jupyter Server adopts the gateway's default kernel only after its first kernelspec
    # fetch; until then a new notebook would ask the gateway for the local default.
    c.MappingKernelManager.default_kernel_name = KERNEL_NAME
    c.GatewayClient.connect_timeout = CONNECT_TIMEOUT_S
    if environ.get("WORKBENCH_GATEWAY_CA"):
        c.GatewayClient.ca_certs = environ["WORKBENCH_GATEWAY_CA"]


if "get_config" in globals():
    configure(get_config(), dict(os.environ))
