"""Sealed sessions (issue 12): what sealing costs a cell's round trip and a large output.

Run: .venv/bin/python benchmarks/bench_sealed_session.py [--rounds 200] [--megabytes 50]

Two Confidential Python kernels against one local broker (the demo hospital): one locked
to a sealed session held by this process (the Python sealed client), one not locked and
driven by a plain jupyter_client client the same way (execute, IOPub until idle, reply).

- Round trip of a trivial cell (``pass``), sealed vs unsealed, rounds alternating so load
  from anything else falls on both alike. Target: p50 overhead under 5 ms.
- Sealing throughput: ``--megabytes`` MB of stream output in 1 MB messages, sealed with
  the kernel's own code (``workbench.sealed.messages.seal_outgoing``, then the JSON the
  kernel's session serializes) and opened with the client's (``open_incoming`` after
  parsing). Baseline: serializing and parsing the same messages unsealed. For information:
  the target (kernel seal plus *browser* open, at least 50 MB/s) is measured by
  ``bench_sealed_browser.py``.
- End to end (for information): a cell printing the same output, from the execute
  request until the client holds all of it, sealed kernel vs unsealed kernel; this adds
  Jupyter's own transport (CurveZMQ, HMAC signatures) on both sides.

The browser's half (WebCrypto opening the same output in Chromium) is measured by
``bench_sealed_browser.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

OVERHEAD_TARGET_MS = 5.0
TIMEOUT_S = 600


def plain_execute(client: Any, code: str) -> int:
    """Execute the way a frontend does; the number of output characters received."""
    msg_id = client.execute(code)
    received = 0
    while True:
        msg = client.get_iopub_msg(timeout=TIMEOUT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            received += len(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while client.get_shell_msg(timeout=TIMEOUT_S)["parent_header"].get("msg_id") != msg_id:
        pass
    return received


def sealing_throughput(megabytes: int) -> dict[str, float]:
    """MB/s of sealing and opening stream output with the kernel's and client's code."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from workbench.sealed import Direction, SealedChannel
    from workbench.sealed.messages import open_incoming, seal_outgoing

    kernel_key, frontend_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    kernel = SealedChannel(kernel_key, frontend_key.public_key(), Direction.TO_FRONTEND)
    frontend = SealedChannel(frontend_key, kernel_key.public_key(), Direction.TO_KERNEL)
    text = "x" * 999_999 + "\n"
    messages = [{"name": "stdout", "text": text} for _ in range(megabytes)]
    size = megabytes * 1_000_000

    start = time.perf_counter()
    plain = [json.dumps(m) for m in messages]
    parsed = [json.loads(m) for m in plain]
    plain_s = time.perf_counter() - start
    assert len(parsed) == megabytes

    start = time.perf_counter()
    wire = [json.dumps(seal_outgoing(kernel, "stream", m)[1]) for m in messages]
    seal_s = time.perf_counter() - start
    start = time.perf_counter()
    opened = [open_incoming(frontend, "display_data", json.loads(m)) for m in wire]
    open_s = time.perf_counter() - start
    assert all(o is not None and o[1]["text"] == text for o in opened)
    return {"plain": size / plain_s / 1e6, "seal": size / seal_s / 1e6,
            "open": size / open_s / 1e6, "sealed": size / (seal_s + open_s) / 1e6}


def _start(site: Any, log: Path) -> tuple[Any, Any]:
    from workbench.kernel.transport import CurveKernelManager

    manager = CurveKernelManager(kernel_name="confidential-python")
    with log.open("ab") as handle:
        manager.start_kernel(env={**site.kernel_env(), "JUPYTER_PATH": str(ROOT)},
                             stdout=handle, stderr=handle)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    return manager, client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()

    from workbench.client.sealed import SealedKernel
    from workbench.demo.environment import hospital

    workdir = Path(tempfile.mkdtemp(prefix="bench-sealed-"))
    with hospital(workdir / "site") as site:
        sealed_manager, sealed_client = _start(site, workdir / "sealed.log")
        plain_manager, plain_client = _start(site, workdir / "plain.log")
        try:
            sealed = SealedKernel(sealed_client, pins=workdir / "pins.json",
                                  timeout_s=TIMEOUT_S)
            lock = sealed.lock()
            for _ in range(10):  # warm both
                sealed.execute("print('warm')")
                plain_execute(plain_client, "print('warm')")
            times: dict[str, list[float]] = {"sealed": [], "plain": []}
            for _ in range(args.rounds):
                start = time.perf_counter()
                assert sealed.execute("pass").status == "ok"
                times["sealed"].append(time.perf_counter() - start)
                start = time.perf_counter()
                plain_execute(plain_client, "pass")
                times["plain"].append(time.perf_counter() - start)
            p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
            overhead = p50["sealed"] - p50["plain"]

            size = args.megabytes * 1_000_000
            # 1 MB lines: each flush of the kernel's stdout is one sealed stream message.
            cell = (f"_line = 'x' * 999_999\nfor _ in range({args.megabytes}):\n"
                    "    print(_line)")
            start = time.perf_counter()
            run = sealed.execute(cell)
            sealed_s = time.perf_counter() - start
            got = len(run.text())
            start = time.perf_counter()
            plain_got = plain_execute(plain_client, cell)
            plain_s = time.perf_counter() - start
        finally:
            for client, manager in ((sealed_client, sealed_manager),
                                    (plain_client, plain_manager)):
                client.stop_channels()
                manager.shutdown_kernel(now=True)
    if got != size or plain_got != size:
        print(f"output incomplete: sealed {got}, plain {plain_got} of {size} characters")
        return 1
    sealed_rate, plain_rate = size / sealed_s / 1e6, size / plain_s / 1e6
    print(f"sealed session {lock.session[:16]}, {args.rounds} rounds each")
    print(f"trivial cell round trip p50: unsealed {p50['plain']:.2f} ms, sealed "
          f"{p50['sealed']:.2f} ms (ratio {p50['sealed'] / p50['plain']:.2f}, overhead "
          f"{overhead:.2f} ms; target < {OVERHEAD_TARGET_MS:g} ms)")
    print(f"{args.megabytes} MB printed by a cell, kernel to client through Jupyter's "
          f"transport: unsealed {plain_rate:.0f} MB/s, sealed {sealed_rate:.0f} MB/s (ratio "
          f"{sealed_rate / plain_rate:.2f}; for information)")
    crypto = sealing_throughput(args.megabytes)
    print(f"{args.megabytes} MB of output in 1 MB messages: unsealed serialize+parse "
          f"{crypto['plain']:.0f} MB/s; kernel seal {crypto['seal']:.0f} MB/s, client open "
          f"{crypto['open']:.0f} MB/s, seal+open {crypto['sealed']:.0f} MB/s (ratio "
          f"{crypto['sealed'] / crypto['plain']:.2f}; for information)")
    met = overhead < OVERHEAD_TARGET_MS
    print("targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
