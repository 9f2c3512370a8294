"""Key broker benchmark: latency and throughput of full RCAR exchanges, against a baseline.

Starts a real broker (``python -m workbench.cli kbs serve``) on 127.0.0.1 with a fresh
store and a simulated-TEE resource, then measures in the same run:

  baseline  a bare HTTP round trip to the same server (GET /healthz)
  exchange  auth + attest (simulated evidence) + one resource, decrypted by the client

Each is measured sequentially (one client: latency p50/p99) and with concurrent clients
(sustained rate), both through the same client (``benchmarks/loadgen.py``, aiohttp, one
connection per simulated client). Targets: exchange p50 < 25 ms and >= 100 exchanges/s.
Client and server share this machine's cores, so the client's own work (evidence signing,
key generation, JWE decryption) is included in the sustained rate, as it would be in a real
deployment only if clients ran on the broker host; the figures are therefore conservative.

Usage: python benchmarks/bench_kbs.py [--quick] [--clients N] [--seconds S] [--server-workers W]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402

from workbench.attestation.tee.simulated import SimulatedProvider  # noqa: E402
from workbench.processes import stop_process  # noqa: E402

TOKEN = "bench-admin-token-" + "b" * 24
RESOURCE = "bench/table-key/phi"
TARGET_P50_MS = 25.0
TARGET_RATE = 100.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BrokerProcess:
    """`workbench kbs serve` in its own process group, so SIGKILL reaches every worker."""

    def __init__(self, home: Path, workers: int) -> None:
        self.home, self.workers, self.port = home, workers, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.home / "kbs" / "kbs.db"

    def start(self) -> BrokerProcess:
        env = {**os.environ, "WORKBENCH_HOME": str(self.home),
               "WORKBENCH_KBS_ADMIN_TOKEN": TOKEN}
        with (self.home / "broker.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workbench.cli", "kbs", "serve", "--port",
                 str(self.port), "--workers", str(self.workers), "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        for _ in range(600):
            if self.process.poll() is not None:
                raise SystemExit(f"broker exited: {(self.home / 'broker.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise SystemExit("broker did not come up within 60 s")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=30)


@contextlib.contextmanager
def broker(home: Path, workers: int) -> Iterator[tuple[str, int]]:
    """A running broker's URL and process id (for its CPU time); stopped on exit."""
    running = BrokerProcess(home, workers).start()
    try:
        assert running.process is not None
        yield running.url, running.process.pid
    finally:
        running.stop()


def simulated_kernel(home: Path) -> SimulatedProvider:
    """A simulated TEE (platform key under ``home``) measuring a one-file package."""
    package = home / "measured"
    package.mkdir()
    (package / "__init__.py").write_text("# benchmark kernel\n")
    return SimulatedProvider(home=home, package_dir=package, kernels_dir=package / "none")


def add_resource(url: str, provider: SimulatedProvider) -> None:
    """Register RESOURCE (a random key) under a policy that accepts ``provider``'s kernel."""
    policy = {"id": "bench", "allowed_tee": ["simulated"], "allow_simulation": True,
              "reference_values": {"simulated": {
                  "measurement": provider.measurement().measurement}}}
    httpx.post(f"{url}/admin/v0/resources", headers={"Authorization": f"Bearer {TOKEN}"},
               json={"path": RESOURCE, "key": base64.b64encode(os.urandom(32)).decode(),
                     "policy": policy}).raise_for_status()


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(name: str, latencies: list[float]) -> dict[str, float]:
    figures = {"n": len(latencies), "p50_ms": percentile(latencies, 0.5) * 1e3,
               "p99_ms": percentile(latencies, 0.99) * 1e3,
               "mean_ms": statistics.fmean(latencies) * 1e3}
    print(f"  {name:<28} n={figures['n']:<6} p50 {figures['p50_ms']:7.2f} ms   "
          f"p99 {figures['p99_ms']:7.2f} ms")
    return figures


async def sustained_exchanges(url: str, provider, workers: int, seconds: float
                              ) -> tuple[float, list[loadgen.Outcome]]:
    start = time.perf_counter()
    outcomes = await loadgen.run(url, provider, RESOURCE, workers=workers, duration_s=seconds)
    elapsed = time.perf_counter() - start
    return sum(o.ok for o in outcomes) / elapsed, outcomes


async def sustained_round_trips(url: str, workers: int, seconds: float) -> float:
    start = time.perf_counter()
    latencies = await loadgen.round_trips(url, "/healthz", workers=workers, duration_s=seconds)
    return len(latencies) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--server-workers", type=int, default=os.cpu_count() or 1,
                        help="broker processes (default: one per CPU)")
    parser.add_argument("--seconds", type=float, default=10.0, help="sustained phase length")
    parser.add_argument("--sequential", type=int, default=400, help="sequential exchanges")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.sequential = 3.0, 60

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        provider = simulated_kernel(home)
        with broker(home, args.server_workers) as (url, pid):
            add_resource(url, provider)
            # Warm up both paths (imports, caches, connections) before measuring.
            asyncio.run(loadgen.run(url, provider, RESOURCE, workers=4,
                                    exchanges_per_worker=10))
            asyncio.run(loadgen.round_trips(url, "/healthz", workers=1,
                                            requests_per_worker=50))

            print(f"key broker benchmark: {os.cpu_count()} CPUs shared by the client and "
                  f"{args.server_workers} broker process(es); load average at start "
                  f"{os.getloadavg()[0]:.2f}")
            print("sequential (one client):")
            base = describe("baseline GET /healthz",
                            asyncio.run(loadgen.round_trips(url, "/healthz", workers=1,
                                                            requests_per_worker=args.sequential)))
            outcomes = asyncio.run(loadgen.run(url, provider, RESOURCE, workers=1,
                                               exchanges_per_worker=args.sequential))
            failures = [o.error for o in outcomes if not o.ok]
            full = describe("full exchange", [o.latency_s for o in outcomes if o.ok])

            print(f"sustained ({args.clients} concurrent clients, {args.seconds:g} s each):")
            base_rate = asyncio.run(sustained_round_trips(url, args.clients, args.seconds))
            server_before, client_before = tree_cpu_s(pid), time.process_time()
            rate, sustained = asyncio.run(sustained_exchanges(url, provider, args.clients,
                                                              args.seconds))
            done = max(1, sum(o.ok for o in sustained))
            server_ms = (tree_cpu_s(pid) - server_before) / done * 1e3
            client_ms = (time.process_time() - client_before) / done * 1e3
            failures += [o.error for o in sustained if not o.ok]
            print(f"  baseline round trips/s       {base_rate:8.1f}")
            print(f"  full exchanges/s             {rate:8.1f}")
            loaded = describe("full exchange under load",
                              [o.latency_s for o in sustained if o.ok])
            load_after = os.getloadavg()[0]

    cores = os.cpu_count() or 1
    print("CPU per exchange (measured in the sustained phase):")
    print(f"  broker (all processes)       {server_ms:8.2f} ms  -> {1e3 / server_ms:6.1f} "
          "exchanges/s per broker core")
    print(f"  client (evidence, keys, HTTP){client_ms:8.2f} ms")
    print(f"  both, on {cores} otherwise idle cores -> at most "
          f"{cores * 1e3 / (server_ms + client_ms):6.1f} exchanges/s "
          f"(load average from other work at the end: {load_after:.2f})")

    print("ratios (exchange / baseline):")
    print(f"  p50 latency                  {full['p50_ms'] / base['p50_ms']:8.1f} x")
    print(f"  throughput                   {rate / base_rate:8.3f} x "
          f"({base_rate / rate:.1f} round trips per exchange)")
    verdict_latency = "PASS" if full["p50_ms"] < TARGET_P50_MS else "FAIL"
    verdict_rate = "PASS" if rate >= TARGET_RATE else "FAIL"
    print(f"targets: p50 {full['p50_ms']:.2f} ms < {TARGET_P50_MS:g} ms: {verdict_latency}; "
          f"{rate:.1f} exchanges/s >= {TARGET_RATE:g}: {verdict_rate}; "
          f"errors: {len(failures)}")
    if failures:
        print("  first error:", failures[0])
    if args.json:
        Path(args.json).write_text(json.dumps({
            "baseline": base, "exchange": full, "exchange_under_load": loaded,
            "baseline_rate": base_rate, "exchange_rate": rate, "errors": len(failures),
            "server_cpu_ms_per_exchange": server_ms, "client_cpu_ms_per_exchange": client_ms},
            indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
