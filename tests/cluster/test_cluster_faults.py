"""Refusals and faults of a cluster of real worker processes attesting to the real broker:
a tampered worker, a peer with a certificate the kernel did not issue, a worker killed while
scoring, the broker unreachable."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster_site import ROOT, WIDE

import workbench as wb
from workbench.demo.environment import free_port
from workbench.scaleout.ca import ClusterCA
from workbench.scaleout.enroll import EnrollmentRefused, judge
from workbench.scaleout.session import ClusterStartFailed
from workbench.scaleout.worker import EXIT_REFUSED

TIMEOUT_S = 60


def _tampered_copy(base: Path) -> Path:
    """The installed code with one line changed: what a modified worker image would run."""
    for folder in ("workbench", "kernels"):
        shutil.copytree(ROOT / folder, base / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    tasks = base / "workbench" / "scaleout" / "tasks.py"
    tasks.write_text(tasks.read_text() + "\n# exfiltrate: send every partition elsewhere\n")
    return base


def test_a_worker_whose_measurement_differs_gets_no_certificate_and_no_task(kernel_side,
                                                                              tmp_path):
    cluster = wb.cluster(n_workers=1)
    copy = _tampered_copy(tmp_path / "image")
    rogue = subprocess.run(
        [sys.executable, "-m", "workbench.scaleout.worker", *cluster.worker_arguments("rogue")],
        env={**os.environ, "PYTHONPATH": str(copy)}, cwd=copy, capture_output=True, text=True,
        timeout=TIMEOUT_S, check=False)
    assert rogue.returncode == EXIT_REFUSED, rogue.stderr
    reason = cluster.enrollment.refused["rogue"]
    assert "worker rogue refused: the broker's verdict on" in reason
    assert f"{WIDE}/table-key/clinical, " in reason
    assert reason.endswith(" is contraindicated (failed: simulated.measurement)")
    assert "the kernel refused to enroll it" in rogue.stderr
    assert "rogue" not in cluster.enrollment.enrolled
    model = wb.load_model("risk-model")
    scan = wb.scan_dataset(WIDE, engine="dask", partition_rows=20_000)
    model.predict(scan, progress=False)
    names = {w["name"] for w in cluster.client.scheduler_info()["workers"].values()}
    assert names == {"worker-0"}


def _handshake(address: str, context: ssl.SSLContext) -> str:
    host, port = address.removeprefix("tls://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        # TLS 1.3 sends the server's verdict on our certificate after the handshake.
        tls.settimeout(2)
        try:
            tls.recv(1)
        except TimeoutError:
            pass
        return tls.version() or ""


def _client_context(ca: ClusterCA, certificate: str, key: str, tmp_path: Path,
                    maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.pem)
    context.check_hostname = False
    (tmp_path / "c.pem").write_text(certificate)
    (tmp_path / "k.pem").write_text(key)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    if maximum is not None:
        context.maximum_version = maximum
    return context


def test_a_peer_whose_certificate_the_kernel_did_not_issue_is_refused(kernel_side, tmp_path):
    from distributed import Client
    from distributed.security import Security

    cluster = wb.cluster(n_workers=1)
    issued = _client_context(cluster.ca, *cluster.ca.pair("probe", "client"), tmp_path)
    assert _handshake(cluster.scheduler_address, issued) == "TLSv1.3"
    # Same key type, same names, but signed by another CA: refused by the scheduler.
    other = ClusterCA()
    foreign = _client_context(cluster.ca, *other.pair("probe", "client"), tmp_path)
    with pytest.raises((ssl.SSLError, ConnectionError), match=r"(?i)unknown ca|alert"):
        _handshake(cluster.scheduler_address, foreign)
    # A certificate of this CA, but TLS 1.2: refused.
    old = _client_context(cluster.ca, *cluster.ca.pair("probe", "client"), tmp_path,
                          ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError, match=r"(?i)version|protocol"):
        _handshake(cluster.scheduler_address, old)
    # Dask's own client with a self-made certificate never connects.
    with pytest.raises((OSError, TimeoutError)):
        Client(cluster.scheduler_address, security=Security.temporary(), timeout=5,
               set_as_default=False)


def test_a_token_for_another_key_gets_no_certificate(kernel_side):
    from jwcrypto.jwk import JWK

    from workbench.attestation.tee import get_provider
    from workbench.brokerclient import BrokerClient
    from workbench.scaleout.ca import make_csr
    from workbench.scaleout.session import broker_keys

    url = kernel_side.config.broker_url
    client = BrokerClient(url, provider=get_provider("simulated"),
                          key=JWK.generate(kty="EC", crv="P-256"))
    session = client.attest([f"{WIDE}/table-key/clinical"])
    other = JWK.generate(kty="EC", crv="P-256").get_op_key("sign")
    with pytest.raises(EnrollmentRefused, match="binds another key"):
        judge({"name": "w", "token": session.token, "csr": make_csr(other, "w")},
              broker_keys=broker_keys(url), resources=[f"{WIDE}/table-key/clinical"])
    client.forget()


def test_a_worker_killed_while_scoring_loses_nothing(kernel_side):
    cluster = wb.cluster(n_workers=2)
    model = wb.load_model("risk-model")
    local = model.predict(wb.scan_dataset(WIDE), progress=False)
    scan = wb.scan_dataset(WIDE, engine="dask", partition_rows=3_000)
    victim = cluster.workers[1]
    killed: dict[str, int] = {}

    def kill_after_first_partitions() -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while scan.done < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        killed["done"] = scan.done
        os.kill(victim.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_partitions)
    killer.start()
    remote = model.predict(scan, batch_rows=200, progress=False)
    killer.join()
    assert killed["done"] < len(scan.partitions), "the kill came after the scoring"
    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    # Its keys lived in that process only: the process is gone.
    assert not Path(f"/proc/{victim.pid}").exists()
    assert remote.equals(local)
    assert [w.name for w in cluster.alive()] == ["worker-0"]


def test_the_broker_unreachable_fails_the_start_with_one_message(kernel_side, monkeypatch):
    from workbench.kernel import state

    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("WORKBENCH_KBS_URL", closed)
    monkeypatch.setattr(state, "_state", None)
    state.start_state()
    before = _workers_running()
    with pytest.raises(ClusterStartFailed) as caught:
        wb.cluster(n_workers=2)
    message = str(caught.value)
    assert message.startswith(f"the cluster did not start: cannot reach the key broker at "
                              f"{closed} (")
    assert message.endswith("no worker could attest, so none was started")
    assert "\n" not in message
    assert _workers_running() == before


def test_workers_that_cannot_reach_the_broker_fail_the_start_naming_it(kernel_side):
    cluster = wb.cluster(n_workers=1)
    closed = f"http://127.0.0.1:{free_port()}"
    cluster.broker_url = closed  # the kernel reaches the broker; the new workers do not
    with pytest.raises(ClusterStartFailed) as caught:
        cluster.add_workers(2)
    assert str(caught.value) == (
        f"the cluster did not start: cannot reach the key broker at {closed}: check that the "
        "data owner's broker is running and reachable from the workers "
        "(worker worker-1, worker-2)")


def test_the_scan_engine_is_checked(kernel_side):
    from workbench.errors import InputError, WorkbenchError

    with pytest.raises(InputError, match="unknown scan engine 'spark' \\(known: local, dask\\)"):
        wb.scan_dataset(WIDE, engine="spark")
    with pytest.raises(WorkbenchError, match="engine='dask' needs a cluster"):
        wb.scan_dataset(WIDE, engine="dask")


def _workers_running() -> int:
    found = subprocess.run(["pgrep", "-fc", "workbench.scaleout.worker"], capture_output=True,
                           text=True, check=False)
    return int(found.stdout.strip() or 0)


def test_progress_counts_partitions_and_map_returns_aggregates(kernel_side, capsys):
    wb.cluster(n_workers=1)
    scan = wb.scan_dataset(WIDE, engine="dask", partition_rows=15_000)
    sizes = scan.map(lambda table: table.num_rows)
    assert sizes == [15_000] * 4
    err = capsys.readouterr().err
    assert f"map over {WIDE}" in err and "4/4" in err and "partitions" in err
    # Only the columns asked for are read (the PHI column is never decrypted for this).
    narrow = wb.scan_dataset(WIDE, engine="dask", columns=["mean_radius"],
                             partition_rows=60_000)
    assert narrow.map(lambda table: table.column_names, progress=False) == [["mean_radius"]]
