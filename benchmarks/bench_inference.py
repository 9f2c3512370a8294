"""Inference benchmark: scoring speed against plain onnxruntime, and memory on 10M patients.

1. Throughput: a 1,000,000-row DataFrame scored by ``Model.predict`` (the model decrypted
   from its seal, inputs checked against the card, columns gathered batch by batch) against
   plain onnxruntime given the same plaintext as a ready float32 array, in the same run,
   in adjacent pairs of runs. Target: at least 0.9x plain onnxruntime's rows per second
   (median over the pairs, so load from other processes weighs on both sides alike).
2. Memory: a 10,000,000-row sealed cohort (generated and sealed in chunks, row groups of
   131,072 rows) scored with ``wb.scan_dataset`` + ``model.predict`` inside a real
   Confidential Python kernel, with keys released by a real broker. The kernel reports its
   own peak RSS. Target: under 1.5 GB.

Usage: python benchmarks/bench_inference.py [--rows-big N] [--skip-big]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATIO_TARGET = 0.9
RSS_TARGET_MB = 1536
BIG_ROWS = 10_000_000
CHUNK_ROWS = 500_000
ROW_GROUP_ROWS = 131_072
SCAN_BATCH_ROWS = 65_536
REPEATS = 11


def _best(action, repeats: int = REPEATS) -> float:
    return min(_timed(action) for _ in range(repeats))[0]


def _timed(action) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(workdir: Path) -> float:
    import onnxruntime as ort

    from workbench.demo.assets import build_assets, build_cohort
    from workbench.inference.model import load_sealed_model
    from workbench.sealing.files import seal_file
    from workbench.sealing.keyring import Keyring

    assets = build_assets(workdir / "assets")
    ring = Keyring.create(workdir / "owner.keyring")
    sealed = seal_file(assets.model, workdir / "risk-model.sealed", name="risk-model",
                       keyring=ring)
    model = load_sealed_model(sealed, "risk-model", ring)
    frame = build_cohort(1_000_000, seed=5)
    plain = frame[model.features].to_numpy(np.float32)
    session = ort.InferenceSession(assets.model.read_bytes(),
                                   providers=["CPUExecutionProvider"])
    rows = len(frame)
    # Runs come in adjacent pairs (order alternating), so both sides of a pair see the same
    # load from whatever else the machine runs; the target is judged on the median of the
    # pairs' ratios. The best run of each side is shown too.
    base, ours, pairs, cpu = [], [], [], {"base": [], "ours": []}
    for number in range(REPEATS):
        sides = [("base", lambda: session.run(None, {"features": plain})),
                 ("ours", lambda: model.predict(frame, progress=False))]
        timed = {name: _timed(run) for name, run in sides[::1 if number % 2 else -1]}
        base.append(timed["base"][0])
        ours.append(timed["ours"][0])
        pairs.append(timed["base"][0] / timed["ours"][0])
        for name in cpu:
            cpu[name].append(timed[name][1])
    check = model.predict(frame.head(1000), progress=False)["probability_malignant"]
    np.testing.assert_array_equal(check.to_numpy(),
                                  session.run(None, {"features": plain[:1000]})[1][:, 1])
    with_conversion = _best(lambda: session.run(
        None, {"features": frame[model.features].to_numpy(np.float32)}))
    base_rate, our_rate = rows / min(base), rows / min(ours)
    ratio = sorted(pairs)[REPEATS // 2]
    print(f"1,000,000-row DataFrame, {REPEATS} paired runs:\n"
          f"  plain onnxruntime, float32 array ready: best {base_rate / 1e6:.2f} M rows/s "
          f"({min(base) * 1000:.0f} ms; median {sorted(base)[REPEATS // 2] * 1000:.0f} ms)\n"
          f"  wb model.predict(DataFrame):            best {our_rate / 1e6:.2f} M rows/s "
          f"({min(ours) * 1000:.0f} ms; median {sorted(ours)[REPEATS // 2] * 1000:.0f} ms)\n"
          f"  (plain onnxruntime including DataFrame -> float32: best "
          f"{rows / with_conversion / 1e6:.2f} M rows/s)\n"
          f"  ratio of best runs {our_rate / base_rate:.2f}; median ratio of paired runs "
          f"{ratio:.2f} (pairs from {min(pairs):.2f} to {max(pairs):.2f}; target >= "
          f"{RATIO_TARGET})\n"
          f"  CPU time (all threads), best: plain {min(cpu['base']) * 1000:.0f} ms, wb "
          f"{min(cpu['ours']) * 1000:.0f} ms: the work the wrapper adds, whatever the load "
          f"(ratio {min(cpu['base']) / min(cpu['ours']):.2f})", flush=True)
    return ratio


def seal_big_cohort(site, rows: int, name: str) -> None:
    """Generate the cohort in chunks and seal it into one file of modest row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cluster_data import register_table

    from workbench.demo.assets import PHI_COLUMNS, build_cohort
    from workbench.sealing import kms
    from workbench.sealing.keyring import Keyring
    from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
    from workbench.sealing.table import encryption_configuration

    ring = Keyring.open(site.workdir / "hospital.keyring")
    for role in (CLINICAL_ROLE, PHI_ROLE):
        ring.ensure_aes256(table_key(name, role))
    ring.save()
    path = site.data_dir / f"{name}.sealed.parquet"
    writer = None
    for number, start in enumerate(range(0, rows, CHUNK_ROWS)):
        chunk = build_cohort(min(CHUNK_ROWS, rows - start), seed=100 + number)
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        del chunk
        if writer is None:
            config = encryption_configuration(name, table.column_names, PHI_COLUMNS)
            properties = kms.crypto_factory(ring).file_encryption_properties(
                kms.connection_config(), config)
            writer = pq.ParquetWriter(path, table.schema, encryption_properties=properties)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        print(f"  sealed {start + table.num_rows:,} of {rows:,} rows", end="\r", flush=True)
    assert writer is not None
    writer.close()
    print(f"  sealed {rows:,} rows into {path.name} ({path.stat().st_size / 1e6:.0f} MB)",
          flush=True)
    register_table(site, name, path, ring, f"{rows:,} patients")


# VmHWM (peak RSS of this process image), not getrusage's ru_maxrss: on Linux the latter
# keeps the pre-exec peak of the forking parent, here the benchmark's own 1M-row frames.
_IN_KERNEL = """
import json, time
import workbench as wb

def peak_mb():
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024

before = peak_mb()
model = wb.load_model("risk-model")
scan = wb.scan_dataset(%(name)r, batch_rows=%(batch)d, columns=model.features)
start = time.perf_counter()
scores = model.predict(scan, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"rows": len(scores), "seconds": seconds,
                  "mean_risk": float(scores["probability_malignant"].mean()),
                  "rss_before_mb": before, "peak_rss_mb": peak_mb()}))
"""


def memory(workdir: Path, rows: int) -> float:
    from jupyter_client.manager import KernelManager

    from workbench.demo.environment import hospital

    outputs: list[str] = []
    with hospital(workdir) as site:
        start = time.perf_counter()
        seal_big_cohort(site, rows, "cohort-big")
        print(f"  generating and sealing took {time.perf_counter() - start:.0f} s", flush=True)
        site.repin()  # the source tree may have changed during those minutes
        manager = KernelManager(kernel_name="confidential-python")
        env = site.kernel_env(WORKBENCH_AUTO_APPROVE="1", JUPYTER_PATH=str(ROOT))
        manager.start_kernel(env=env)
        client = manager.client()
        try:
            client.start_channels()
            client.wait_for_ready(timeout=120)
            reply = client.execute_interactive(
                _IN_KERNEL % {"name": "cohort-big", "batch": SCAN_BATCH_ROWS}, timeout=3600,
                output_hook=lambda msg: _collect(msg, outputs))
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"kernel error: {reply['content'].get('evalue')}")
    result = json.loads("".join(outputs).strip().splitlines()[-1])
    print(f"{result['rows']:,}-row sealed cohort scored in a Confidential Python kernel via "
          f"scan_dataset + predict: {result['seconds']:.1f} s "
          f"({result['rows'] / result['seconds'] / 1e6:.2f} M rows/s); kernel RSS "
          f"{result['rss_before_mb']:.0f} MB after start, peak {result['peak_rss_mb']:.0f} MB "
          f"(target < {RSS_TARGET_MB} MB)", flush=True)
    return float(result["peak_rss_mb"])



def _collect(msg: dict, into: list[str]) -> None:
    if msg["msg_type"] == "stream":
        into.append(msg["content"]["text"])
    elif msg["msg_type"] == "error":
        into.append(f"{msg['content']['ename']}: {msg['content']['evalue']}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-big", type=int, default=BIG_ROWS)
    parser.add_argument("--skip-big", action="store_true", help="only the throughput part")
    args = parser.parse_args()
    missed = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        ratio = throughput(Path(tmp) / "throughput")
        if ratio < RATIO_TARGET:
            missed.append(f"throughput ratio {ratio:.2f} < {RATIO_TARGET}")
        if not args.skip_big:
            peak = memory(Path(tmp) / "memory", args.rows_big)
            if peak >= RSS_TARGET_MB:
                missed.append(f"peak RSS {peak:.0f} MB >= {RSS_TARGET_MB} MB")
    print("targets met" if not missed else "targets missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
