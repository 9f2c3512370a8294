"""Key broker load test, full size: 200 concurrent clients, then a SIGKILL under that load.

The tests run the same checks small (tests/kbs/test_load.py); this runs them for longer on
a broker with one process per CPU, on 127.0.0.1 only, and stops by itself:

  load      200 concurrent clients run whole exchanges (auth, attest with simulated
            evidence, one resource, decrypted) for --seconds. Pass: zero errors, and the
            audit log holds exactly one release record per successful release, no more.
            Baseline: the same 200 clients doing bare round trips (GET /healthz).
  kill      200 clients again; once --kill-after releases were acknowledged, every broker
            process gets SIGKILL. The broker restarts on the same store. Pass: every
            acknowledged release has its record and `workbench audit verify` accepts the
            chain; the restarted broker serves exchanges.

Usage: python benchmarks/bench_kbs_load.py [--quick] [--clients N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen  # noqa: E402
from bench_kbs import (  # noqa: E402
    RESOURCE,
    BrokerProcess,
    add_resource,
    describe,
    simulated_kernel,
)

from workbench.attestation.tee.simulated import SimulatedProvider  # noqa: E402

KILL_PHASE_LIMIT_S = 120.0


def release_records(db: Path) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT payload FROM audit_log WHERE kind = 'release'").fetchall()
    return Counter(json.loads(payload)["session"] for (payload,) in rows)


def audit_verify(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "audit", "verify", "--db",
                           f"sqlite:///{db}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def load_phase(broker: BrokerProcess, provider: SimulatedProvider, clients: int,
               seconds: float) -> list[str]:
    """Problems found (empty: passed)."""
    start = time.perf_counter()
    baseline = asyncio.run(loadgen.round_trips(broker.url, "/healthz", workers=clients,
                                               duration_s=seconds / 2))
    base_rate = len(baseline) / (time.perf_counter() - start)
    before = release_records(broker.db)
    start = time.perf_counter()
    outcomes = asyncio.run(loadgen.run(broker.url, provider, RESOURCE, workers=clients,
                                       duration_s=seconds))
    elapsed = time.perf_counter() - start
    ok = [o for o in outcomes if o.ok]
    rate = len(ok) / elapsed
    print(f"load: {clients} concurrent clients for {seconds:g} s")
    describe("baseline GET /healthz", baseline)
    describe("full exchange", [o.latency_s for o in ok])
    print(f"  round trips/s {base_rate:8.1f}   exchanges/s {rate:8.1f}   "
          f"ratio {rate / base_rate:.3f}")
    problems = [f"{len(outcomes) - len(ok)} exchanges failed (first: "
                f"{next(o.error for o in outcomes if not o.ok)})"] if len(ok) < len(outcomes) \
        else []
    added = release_records(broker.db) - before
    expected = Counter(o.session_ref for o in ok)
    if added != expected:
        problems.append(f"audit release records do not match the releases: "
                        f"{sum((added - expected).values())} extra, "
                        f"{sum((expected - added).values())} missing")
    print(f"  releases {len(ok)}, release records added {sum(added.values())}, "
          f"one per release: {'yes' if added == expected else 'NO'}")
    return problems


def kill_phase(broker: BrokerProcess, provider: SimulatedProvider, clients: int,
               kill_after: int) -> list[str]:
    acknowledged: list[str] = []
    outcomes = asyncio.run(loadgen.run_then_interrupt(
        [broker.url], provider, RESOURCE, workers=clients, after=kill_after,
        interrupt=broker.kill, acknowledged=acknowledged, limit_s=KILL_PHASE_LIMIT_S))
    interrupted = sum(not o.ok for o in outcomes)
    broker.start()
    recorded = release_records(broker.db)
    lost = [ref for ref in acknowledged if ref not in recorded]
    verdict = audit_verify(broker.db)
    after = asyncio.run(loadgen.run(broker.url, provider, RESOURCE, workers=4,
                                    exchanges_per_worker=5))
    print(f"kill: SIGKILL after {len(acknowledged)} acknowledged releases, {interrupted} "
          f"exchanges cut off in flight; restarted: acknowledged releases without a record "
          f"{len(lost)}; audit verify: {(verdict.stdout or verdict.stderr).strip()}; "
          f"{sum(o.ok for o in after)}/{len(after)} exchanges after the restart")
    problems = []
    if len(acknowledged) < kill_after:
        problems.append(f"the load ended before {kill_after} releases: nothing was killed")
    if lost:
        problems.append(f"{len(lost)} acknowledged releases lost their audit record")
    if verdict.returncode != 0:
        problems.append(f"audit chain does not verify: {verdict.stderr.strip()}")
    if not all(o.ok for o in after):
        problems.append("the restarted broker failed exchanges")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="load phase length")
    parser.add_argument("--kill-after", type=int, default=500,
                        help="acknowledged releases before the SIGKILL")
    parser.add_argument("--server-workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.kill_after = 5.0, 100

    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        provider = simulated_kernel(home)
        broker = BrokerProcess(home, args.server_workers).start()
        try:
            add_resource(broker.url, provider)
            print(f"key broker load test: {os.cpu_count()} CPUs shared by the clients and "
                  f"{args.server_workers} broker process(es)")
            problems = load_phase(broker, provider, args.clients, args.seconds)
            problems += kill_phase(broker, provider, args.clients, args.kill_after)
        finally:
            broker.stop()
    for problem in problems:
        print(f"FAIL: {problem}")
    print("load test: " + ("FAIL" if problems else "PASS (zero errors, one release record "
                           "per release, nothing acknowledged lost to SIGKILL)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
