"""The kernel's traffic is ciphertext on the wire, and only a client of its own key gets in.

A byte-level tap between client and kernel sees neither the code nor its output of a
confidential kernel; through the same tap a plain ipykernel's traffic is readable (the
control). Every channel refuses a plaintext client and a client of another key, as its
ZeroMQ monitor reports, and accepts a client of the kernel's key.
"""

from __future__ import annotations

import re
import secrets

import pytest
import zmq
from handshakes import first_handshake
from jupyter_client.connect import channel_socket_types
from jupyter_client.session import Session
from transport_kernels import Kernel
from wiretap import CHANNELS, tapped


def _through_tap(kernel: Kernel) -> tuple[str, bytes]:
    """Run code printing a fresh marker over a tapped connection: (output, wire bytes)."""
    first, second = secrets.token_hex(12), secrets.token_hex(12)
    manager = kernel.manager
    with tapped(manager.ip, {c: getattr(manager, f"{c}_port") for c in CHANNELS}) as tap:
        # A session of its own: clients of one manager share its session id, which is
        # their ZMQ identity, and a second one would take over the first one's replies.
        client = manager.client(session=Session(key=manager.session.key))
        for channel in CHANNELS:
            setattr(client, f"{channel}_port", tap.ports[channel])
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            out: list[str] = []
            client.execute_interactive(
                f"print('{first}' + '{second}')", timeout=120,
                output_hook=lambda m: out.append(m["content"].get("text", "")))
        finally:
            client.stop_channels()
        captured = tap.captured
    output = "".join(out)
    assert first + second in output, output
    return first, captured


@pytest.fixture(scope="module")
def plain(start_kernel) -> Kernel:
    """A stock ipykernel with jupyter_client's default (no transport encryption)."""
    return start_kernel("python3")


def test_the_wire_carries_neither_code_nor_output_of_a_confidential_kernel(kernel: Kernel,
                                                                          plain: Kernel):
    marker, wire = _through_tap(kernel)
    assert len(wire) > 1000, "the tap saw no traffic"
    assert marker.encode() not in wire
    assert b"execute_request" not in wire and b"kernel_info" not in wire
    # The control: the same tap reads a plaintext kernel's code and messages.
    marker, wire = _through_tap(plain)
    assert marker.encode() in wire and b"execute_request" in wire


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_refuses_plaintext_and_foreign_keys(kernel: Kernel, channel: str):
    manager = kernel.manager
    url = f"tcp://{manager.ip}:{getattr(manager, f'{channel}_port')}"
    kind = channel_socket_types[channel]
    # Which failure the monitor reports depends on who notices first (a SUB socket sees
    # the server drop it); it is never a success.
    plaintext = first_handshake(kind, url, None)
    assert plaintext.name.startswith("HANDSHAKE_FAILED"), plaintext
    foreign = first_handshake(kind, url, zmq.curve_keypair()[0])
    assert foreign.name.startswith("HANDSHAKE_FAILED"), foreign
    assert first_handshake(kind, url, manager.curve_publickey).name == "HANDSHAKE_SUCCEEDED"


def test_a_stock_client_without_the_kernels_key_gets_no_answer(kernel: Kernel):
    """jupyter_client's own client, given the connection info minus the server key."""
    from jupyter_client.blocking import BlockingKernelClient

    info = kernel.manager.get_connection_info()
    info.pop("curve_publickey")
    client = BlockingKernelClient()
    client.load_connection_info(info)
    shell = f"tcp://{info['ip']}:{info['shell_port']}"
    assert first_handshake(zmq.DEALER, shell, None).name.startswith("HANDSHAKE_FAILED")
    client.start_channels()
    # With every handshake refused libzmq may drop the only pipe, and a DEALER with no peer
    # blocks on send (one CI run hung here for 600 s): bound the send, so that "no answer"
    # shows either as the client's timeout or as a send that cannot be delivered.
    client.shell_channel.socket.setsockopt(zmq.SNDTIMEO, 3000)
    try:
        with pytest.raises((RuntimeError, zmq.Again)) as refused:
            client.wait_for_ready(timeout=3)
        if isinstance(refused.value, RuntimeError):
            assert re.search(r"didn't respond|died before replying", str(refused.value))
    finally:
        client.stop_channels()
