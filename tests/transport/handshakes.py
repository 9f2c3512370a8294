"""What a ZeroMQ socket's monitor says about its CurveZMQ handshake with a kernel."""

from __future__ import annotations

import time

import zmq
from zmq.utils.monitor import recv_monitor_message

HANDSHAKE_EVENTS = frozenset({zmq.EVENT_HANDSHAKE_SUCCEEDED,
                              zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
                              zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                              zmq.EVENT_HANDSHAKE_FAILED_AUTH})
# Only a bound on waiting for an event that comes within milliseconds; nothing is timed.
GIVE_UP_S = 60.0


class Handshake:
    def __init__(self, event: int, value: int) -> None:
        self.event = event
        self.value = value

    @property
    def name(self) -> str:
        return zmq.Event(self.event).name

    def __repr__(self) -> str:
        return f"Handshake({self.name}, {self.value})"


def first_handshake(socket_type: int, url: str, server_key: bytes | None) -> Handshake:
    """Connect a socket of ``socket_type`` to ``url`` (as a CurveZMQ client of
    ``server_key``, or in plaintext for None) and return the first handshake outcome."""
    context = zmq.Context.instance()
    socket = context.socket(socket_type)
    socket.linger = 0
    if server_key is not None:
        socket.curve_publickey, socket.curve_secretkey = zmq.curve_keypair()
        socket.curve_serverkey = server_key
    if socket_type == zmq.SUB:
        socket.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = socket.get_monitor_socket()
    try:
        socket.connect(url)
        deadline = time.monotonic() + GIVE_UP_S
        while time.monotonic() < deadline:
            if monitor.poll(500):
                message = recv_monitor_message(monitor)
                if message["event"] in HANDSHAKE_EVENTS:
                    return Handshake(message["event"], message["value"])
        raise AssertionError(f"no handshake with {url} within {GIVE_UP_S:g} s")
    finally:
        socket.disable_monitor()
        monitor.close(0)
        socket.close(0)
