"""wb.cluster in a real Confidential Python kernel (jupyter_client): scores on attested
workers equal the kernel's own, and the broker's audit shows each worker attesting once with
its own key and receiving only the keys its tasks read."""

from __future__ import annotations

from collections import Counter

from cluster_site import WIDE, WIDE_ROWS
from kernel_helpers import RunningKernel, audit

from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, file_keyset, table_key

MODEL = "risk-model"


def test_cluster_scores_equal_the_kernel_and_each_worker_attests_for_itself(site, tmp_path):
    site.repin()
    before = {"attest": len(audit(site, "attest")), "release": len(audit(site, "release"))}
    kernel = RunningKernel(site.kernel_env(WORKBENCH_AUTO_APPROVE="1"), tmp_path / "k.log")
    try:
        outcome = kernel.execute(
            "import workbench as wb\n"
            "cluster = wb.cluster(n_workers=2)\n"
            "model = wb.load_model('risk-model')\n"
            f"local = model.predict(wb.scan_dataset('{WIDE}'), progress=False)\n"
            f"scan = wb.scan_dataset('{WIDE}', engine='dask', partition_rows=6000)\n"
            "remote = model.predict(scan)\n")
        assert outcome.error is None, outcome.evalue
        facts = kernel.value(
            "{'equal': bool(remote.equals(local)), 'rows': len(remote), "
            "'columns': list(remote.columns), 'partitions': len(scan.partitions), "
            "'done': scan.done, 'workers': sorted(cluster.attestation_ms()), "
            "'repr': repr(cluster)}")
        kernel.execute("cluster.close()")
    finally:
        kernel.shutdown()
    assert facts["equal"] and facts["rows"] == WIDE_ROWS
    assert facts["columns"] == ["label", "probability_benign", "probability_malignant"]
    assert facts["partitions"] == facts["done"] == WIDE_ROWS // 6000
    assert facts["workers"] == ["worker-0", "worker-1"]
    assert "TLS 1.3 mutual" in facts["repr"] and "attested warning" in facts["repr"]

    attests = audit(site, "attest")[before["attest"]:]
    # Workers serve no Jupyter channels: their evidence binds no transport key.
    workers = [a for a in attests if not a.get("transport_key")]
    assert len(workers) == 2, workers
    assert all(a["verdict"] != "rejected" for a in workers)
    sessions = {a["session"] for a in workers}
    assert len(sessions) == 2
    releases = [r for r in audit(site, "release")[before["release"]:]
                if r["session"] in sessions]
    per_worker = Counter((r["session"], r["resource"]) for r in releases)
    # Each key at most once per worker, and only the keys the tasks read: never the PHI key.
    assert set(per_worker.values()) == {1}
    read = {r["resource"] for r in releases}
    assert read == {table_key(WIDE, CLINICAL_ROLE), file_keyset(MODEL)}
    assert table_key(WIDE, CLINICAL_ROLE) in read
    assert table_key(WIDE, PHI_ROLE) not in read
    # Both workers scored: each fetched the dataset key with its own session.
    assert {s for s, res in per_worker if res == table_key(WIDE, CLINICAL_ROLE)} == sessions
