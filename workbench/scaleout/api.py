"""``wb.cluster``, ``wb.scan_dataset`` and ``wb.scan_images`` with ``engine="dask"``: the
kernel API of scale-out.

These sit above ``workbench.kernel.api`` (the cluster uses the kernel's state, catalog and
runtime table); ``import workbench as wb`` resolves ``wb.scan_dataset`` here, which is the
kernel's own scan unless ``engine="dask"`` (and ``wb.scan_images`` likewise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.errors import InputError, WorkbenchError
from workbench.kernel import api as kernel_api
from workbench.kernel.keysource import EntryKeySource
from workbench.kernel.runtimes import resolve_runtime
from workbench.kernel.state import REFUSED_VERDICTS, current_state

if TYPE_CHECKING:
    from workbench.scaleout.scan import ClusterImageScan, ClusterScan
    from workbench.scaleout.session import Cluster

ENGINES = ("local", "dask")
_current: dict[str, Cluster] = {}


def cluster(n_workers: int = 2, runtime: str | None = None, *,
            start_timeout_s: float = 120.0) -> Cluster:
    """Start a Dask cluster of ``n_workers`` attested workers under ``runtime`` (default:
    the kernel's own). Each worker attests to the broker with its own key; the kernel issues
    its TLS certificate only if the broker's verdict passes. Replaces this kernel's cluster."""
    from workbench.scaleout.session import Cluster, broker_keys

    state = current_state()
    broker_keys(state.config.broker_url)  # one clear message when the broker is down
    # Workers are judged on the resources the broker accepts this kernel for: a catalog
    # entry under another policy (or not registered) is no reason to refuse a worker.
    report = state.attest()
    resources = [r for r in state.catalog().resources()
                 if (report.verdict_for(r) or {}).get("status") not in REFUSED_VERDICTS]
    chosen = state.runtime if runtime is None else resolve_runtime(
        runtime, allow_simulation=state.config.allow_simulation)
    previous = _current.pop("cluster", None)
    if previous is not None:
        previous.close()
    started = Cluster(n_workers=n_workers, runtime=chosen, broker_url=state.config.broker_url,
                      resources=resources,
                      allow_simulation=state.config.allow_simulation,
                      start_timeout_s=start_timeout_s)
    _current["cluster"] = started
    return started


def _engine(engine: str) -> str:
    if engine not in ENGINES:
        raise InputError(f"unknown scan engine '{engine}' (known: {', '.join(ENGINES)})")
    return engine


def _running() -> Cluster:
    running = _current.get("cluster")
    if running is None or running.client is None:
        raise WorkbenchError("engine='dask' needs a cluster: start one with "
                             "wb.cluster(n_workers=...) first")
    return running


def scan_dataset(name: str, batch_rows: int = kernel_api.DEFAULT_BATCH_ROWS,
                 columns: Sequence[str] | None = None, *, approve: bool = False,
                 engine: str = "local", partition_rows: int | None = None
                 ) -> kernel_api.DatasetScan | ClusterScan:
    """The kernel's scan (``engine="local"``), or the same dataset scanned on the cluster
    (``engine="dask"``: pass it to ``model.predict``, or ``.map(fn)`` for aggregates)."""
    if _engine(engine) == "local":
        return kernel_api.scan_dataset(name, batch_rows, columns, approve=approve)
    from workbench.scaleout.scan import DEFAULT_PARTITION_ROWS, ClusterScan, group_rows

    running = _running()
    state = current_state()
    entry = state.catalog().get("dataset", name)
    keys = EntryKeySource(state, entry, approve=approve)
    checked = kernel_api._checked_columns(entry, keys, columns)
    return ClusterScan(running, entry, group_rows(entry, keys), checked,
                       partition_rows or DEFAULT_PARTITION_ROWS,
                       lambda model: current_state().catalog().get("model", model))


def scan_images(name: str, batch_rows: int | None = None,
                columns: Sequence[str] | None = None, *, approve: bool = False,
                engine: str = "local", partition_rows: int | None = None
                ) -> kernel_api.ImageScan | ClusterImageScan:
    """The kernel's image scan (``engine="local"``), or the same image set scored on the
    cluster (``engine="dask"``: whole row groups per partition, about
    ``DEFAULT_IMAGE_PARTITION_BYTES`` of pixels each unless ``partition_rows`` says)."""
    if _engine(engine) == "local":
        return kernel_api.scan_images(name, batch_rows, columns, approve=approve)
    from workbench.scaleout.scan import DEFAULT_IMAGE_PARTITION_BYTES, ClusterImageScan

    # The kernel's own scan opens the footer and checks the set and the columns; the
    # cluster scan reuses what it read.
    local = kernel_api.scan_images(name, batch_rows, columns, approve=approve)
    running = _running()
    per_partition = DEFAULT_IMAGE_PARTITION_BYTES // local.info.image_bytes
    return ClusterImageScan(running, local.entry, local.info.group_rows, local.columns,
                            partition_rows or max(1, per_partition),
                            lambda model: current_state().catalog().get("model", model),
                            read_rows=local.batch_rows)
