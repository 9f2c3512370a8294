"""A resource whose policy says ``sealed_session: required``, through real kernels: refused
to a kernel nobody locked, released to a locked one on the analyst's sealed approval, and
recorded under the session's fingerprint (issue 12, item 6)."""

from __future__ import annotations

from pathlib import Path

from kernel_helpers import add_dataset, audit

from workbench.client.sealed import SealedKernel
from workbench.demo.environment import demo_policy


def test_a_sealed_only_dataset_needs_a_locked_kernel_and_a_sealed_approval(
        site, start_kernel, tmp_path: Path) -> None:
    add_dataset(site, "sealed-only", policy=demo_policy(site.measurement,
                                                        sealed_session="required"))
    unlocked = start_kernel()
    refused = unlocked.execute("import workbench as wb\n"
                               "wb.open_dataset('sealed-only', approve=True)")
    assert refused.ename == "ReleaseRefused"
    assert "sealed-session" in refused.evalue and "binds no session key" in refused.evalue

    locked = start_kernel()
    analyst = SealedKernel(locked.client, approve=True, pins=tmp_path / "pins.json",
                           timeout_s=120)
    session = analyst.lock().session
    run = analyst.execute("import workbench as wb\n"
                          "df = wb.open_dataset('sealed-only')\nprint(len(df))")
    assert run.status == "ok" and run.text().strip() == "40"
    releases = [r for r in audit(site, "release")
                if r["resource"].startswith("sealed-only/")]
    assert releases and all(r["analyst_approval"] == {"mode": "sealed", "session": session}
                            for r in releases)
