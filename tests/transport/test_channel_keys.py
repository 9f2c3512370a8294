"""Who holds the kernel's channel key: the kernel alone.

A stock jupyter_client KernelManager starts Confidential Python; the kernel makes its
CurveZMQ pair, the connection file and everything the host keeps hold only the public
half, and a restart brings a new pair (and new ports). The provisioner's refusals name
their cause.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import zmq
from handshakes import first_handshake
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from transport_kernels import Kernel

from workbench.kernel.transport import (
    TransportError,
    raw_key,
    read_server_key,
    server_key,
    server_key_path,
    z85_key,
)


def _kernel_keys(kernel: Kernel) -> tuple[bytes, bytes]:
    """The pair the kernel process serves with, as its own code sees it."""
    out = kernel.run("from ipykernel.kernelapp import IPKernelApp as _A\n"
                     "_app = _A.instance()\n"
                     "print(_app.curve_publickey.decode(), _app.curve_secretkey.decode())")
    public, secret = out.split()
    return public.encode(), secret.encode()


def test_the_kernel_serves_with_a_pair_whose_secret_stays_in_the_kernel(kernel: Kernel):
    public, secret = _kernel_keys(kernel)
    assert zmq.curve_public(secret) == public
    manager = kernel.manager
    assert manager.curve_publickey == public and manager.curve_secretkey is None
    assert server_key(kernel.client) == raw_key(public)
    info = json.loads(Path(manager.connection_file).read_text())
    assert info["curve_publickey"] == public.decode() and "curve_secretkey" not in info
    published = server_key_path(manager.connection_file)
    assert read_server_key(published) == public
    # Nothing the host can read holds the secret: the connection directory, the log.
    for path in [*Path(manager.connection_file).parent.iterdir(), kernel.log]:
        if path.is_file():
            assert secret not in path.read_bytes(), path
    workbench = kernel.client.kernel_info(reply=True, timeout=60)["content"]["workbench"]
    assert workbench["transport_key"] == raw_key(public).hex()


@pytest.fixture(scope="module")
def required(start_kernel) -> Kernel:
    """A manager configured as the issue asks (transport_encryption = required): upstream
    would generate the pair itself; the provisioner leaves that to the kernel."""
    return start_kernel(manager_options={"transport_encryption": "required"})


def test_a_manager_that_requires_encryption_gets_the_kernels_key(required: Kernel):
    public, _secret = _kernel_keys(required)
    assert required.manager.curve_publickey == public
    assert required.manager.curve_secretkey is None
    assert "curve_secretkey" not in json.loads(Path(required.manager.connection_file)
                                               .read_text())


def test_a_restart_brings_a_new_pair_and_new_ports(required: Kernel):
    manager = required.manager
    old_key, old_ports = manager.curve_publickey, list(manager.ports)
    required.client.stop_channels()
    manager.restart_kernel(now=False)
    assert manager.curve_publickey != old_key and manager.curve_secretkey is None
    assert set(manager.ports).isdisjoint(old_ports)
    required.client = manager.client()
    required.client.start_channels()
    required.client.wait_for_ready(timeout=120)
    public, _secret = _kernel_keys(required)
    assert public == manager.curve_publickey
    # A client still holding the old key is refused by the new kernel.
    refused = first_handshake(zmq.DEALER, f"tcp://{manager.ip}:{manager.shell_port}", old_key)
    accepted = first_handshake(zmq.DEALER, f"tcp://{manager.ip}:{manager.shell_port}", public)
    assert refused.name == "HANDSHAKE_FAILED_NO_DETAIL" and accepted.name == "HANDSHAKE_SUCCEEDED"


def _spec(tmp_path: Path, argv: list[str], **config: object) -> KernelSpecManager:
    folder = tmp_path / "kernels" / "broken-confidential"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "broken", "language": "python",
        "metadata": {"supported_encryption": ["curve"], "kernel_provisioner": {
            "provisioner_name": "workbench-confidential",
            "config": {"runtime": "simulated", "allow_simulation": True, **config}}}}))
    return KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])


def test_a_kernel_that_exits_before_publishing_its_key_is_refused(tmp_path):
    specs = _spec(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)",
                             "{connection_file}"])
    manager = KernelManager(kernel_name="broken-confidential", kernel_spec_manager=specs)
    with pytest.raises(TransportError) as refused:
        manager.start_kernel()
    assert "the kernel exited (status 3) before publishing its transport key in " \
        f"{manager.connection_file}.server-key" in str(refused.value)


def test_a_kernel_that_never_publishes_its_key_is_refused_and_stopped(tmp_path):
    specs = _spec(tmp_path, [sys.executable, "-c", "import time; time.sleep(120)",
                             "{connection_file}"], transport_key_timeout_s=1.0)
    manager = KernelManager(kernel_name="broken-confidential", kernel_spec_manager=specs)
    with pytest.raises(TransportError) as refused:
        manager.start_kernel()
    assert "the kernel did not publish its transport key in " in str(refused.value)
    assert "within 1 s" in str(refused.value)
    process = manager.provisioner.process
    assert process.poll() is not None, "the silent kernel was left running"


@pytest.mark.parametrize("content, reason", [
    ("not json", "not a kernel server key file"),
    ('{"format": "something-else/1", "curve_publickey": "x"}', "not a kernel server key file"),
    ('{"format": "workbench-kernel-server-key/1", "curve_publickey": "short"}',
     "a CurveZMQ key is 40 Z85 characters, not 5"),
])
def test_an_unusable_server_key_file_is_refused(tmp_path, content, reason):
    path = tmp_path / "kernel-x.json.server-key"
    path.write_text(content)
    with pytest.raises(TransportError) as refused:
        read_server_key(path)
    assert reason in str(refused.value)


def test_keys_convert_both_ways_and_refuse_wrong_sizes():
    public, _secret = zmq.curve_keypair()
    assert z85_key(raw_key(public)) == public
    with pytest.raises(TransportError, match="is 32 bytes, not 31"):
        z85_key(b"x" * 31)
    with pytest.raises(TransportError, match="not valid Z85"):
        raw_key(b"~" * 40)
