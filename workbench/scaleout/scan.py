"""A sealed dataset scanned on the cluster: partitions of whole row groups, scored where the
workers read them; only result columns travel back to the kernel.

The kernel opens the file's footer itself (it needs the row-group sizes to plan), which
releases the clinical key to the kernel as for any scan. Each task carries the catalog entry
and row-group numbers only: never data, never a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.kernel.catalog import Entry
from workbench.scaleout.progress import partitions_bar
from workbench.scaleout.session import Cluster
from workbench.scaleout.tasks import (
    map_image_partition,
    map_partition,
    score_image_partition,
    score_partition,
)
from workbench.sealing.keys import KeySource

# Partitions of a few hundred thousand rows keep the scheduler's per-task cost negligible.
DEFAULT_PARTITION_ROWS = 500_000
# Image partitions by bytes of pixels: a few row groups (16 MB each) per task.
DEFAULT_IMAGE_PARTITION_BYTES = 64 * 2**20


def plan_partitions(group_rows: Sequence[int], partition_rows: int) -> list[list[int]]:
    """Consecutive row groups, each partition reaching ``partition_rows`` (the last may not)."""
    partitions: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for index, size in enumerate(group_rows):
        current.append(index)
        rows += size
        if rows >= partition_rows:
            partitions.append(current)
            current, rows = [], 0
    if current:
        partitions.append(current)
    return partitions


def group_rows(entry: Entry, keys: KeySource) -> list[int]:
    """The rows of each row group of a sealed table, from the footer the kernel opens
    itself (which checks the file and its footer key)."""
    from workbench.sealing.table import open_parquet

    metadata = open_parquet(entry.path, keys).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


class ClusterScan:
    """``wb.scan_dataset(name, engine="dask")``: pass it to ``model.predict``, or ``map``."""

    def __init__(self, cluster: Cluster, entry: Entry, rows_per_group: Sequence[int],
                 columns: list[str] | None, partition_rows: int,
                 model_entry: Callable[[str], Entry]) -> None:
        if partition_rows < 1:
            raise WorkbenchError("partition_rows must be at least 1")
        self._group_rows = list(rows_per_group)
        self.num_rows = sum(self._group_rows)
        self.partitions = plan_partitions(self._group_rows, partition_rows)
        self.done = 0
        self._cluster, self._entry, self._columns = cluster, entry, columns
        self._model_entry = model_entry

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} '{self._entry.name}': {self.num_rows} rows in "
                f"{len(self.partitions)} partitions on {len(self._cluster.alive())} workers>")

    def _run(self, function: Callable[..., Any], arguments: Callable[[list[int]], tuple],
             what: str, progress: bool,
             consume: Callable[[int, Any], None] | None = None) -> list[Any]:
        """One task per partition; results in partition order (or each handed to
        ``consume(partition, result)`` as it arrives); a bar of partitions done."""
        from distributed import as_completed

        client = self._cluster.client
        if client is None:
            raise WorkbenchError("the cluster is closed: start one with wb.cluster(...)")
        run = uuid.uuid4().hex[:8]
        futures = [client.submit(function, *arguments(groups), key=f"{what}-{run}-{i}",
                                 pure=False, retries=2)
                   for i, groups in enumerate(self.partitions)]
        order = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        bar = partitions_bar(len(futures), what) if progress else None
        self.done = 0
        try:
            # Blocks on the scheduler's messages: the kernel is idle while workers score.
            for future, result in as_completed(futures, with_results=True,
                                               loop=client.loop):
                if consume is None:
                    results[order[future.key]] = result
                else:
                    consume(order[future.key], result)
                future.release()
                self.done += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return results

    def _offsets(self) -> list[int]:
        """The first row of each partition in the whole scan."""
        offsets, row = [], 0
        for groups in self.partitions:
            offsets.append(row)
            row += sum(self._group_rows[g] for g in groups)
        return offsets

    def score(self, model: Any, *, batch_rows: int, progress: bool) -> pd.DataFrame:
        """``model.predict(scan)``: every partition scored on a worker, outputs in order.

        Each partition's columns are copied into place as they arrive, while the workers
        go on scoring: no concatenation after the last one, and no second copy held."""
        model_entry = self._model_entry(model.name)
        offsets = self._offsets()
        columns: dict[str, np.ndarray] = {}

        def place(partition: int, part: dict[str, np.ndarray]) -> None:
            start = offsets[partition]
            for name, values in part.items():
                if name not in columns:
                    columns[name] = np.empty((self.num_rows, *values.shape[1:]), values.dtype)
                columns[name][start:start + len(values)] = values

        self._run(score_partition,
                  lambda groups: (self._entry, groups, model_entry, batch_rows),
                  f"scoring {self._entry.name} with {model.name}", progress, place)
        if not columns:
            return model.predict(pd.DataFrame(columns=model.features), progress=False)
        return pd.DataFrame(columns, index=pd.RangeIndex(self.num_rows), copy=False)

    def map(self, fn: Callable[[Any], Any], *, progress: bool = True) -> list[Any]:
        """``fn(table)`` on every partition's decrypted Arrow table, on the workers; the
        results (aggregates, not rows) come back in partition order."""
        return self._run(map_partition, lambda groups: (self._entry, groups, self._columns, fn),
                         f"map over {self._entry.name}", progress)


class ClusterImageScan(ClusterScan):
    """``wb.scan_images(name, engine="dask")``: the image set's row groups scored on the
    workers; each partition comes back as the rows' fields and the model's outputs."""

    def __init__(self, cluster: Cluster, entry: Entry, rows_per_group: Sequence[int],
                 columns: list[str] | None, partition_rows: int,
                 model_entry: Callable[[str], Entry], read_rows: int | None = None) -> None:
        super().__init__(cluster, entry, rows_per_group, columns, partition_rows, model_entry)
        self.batch_rows = read_rows

    def score(self, model: Any, *, batch_rows: int, progress: bool) -> pd.DataFrame:
        model_entry = self._model_entry(model.name)
        parts = self._run(score_image_partition,
                          lambda groups: (self._entry, groups, self._columns,
                                          self.batch_rows, model_entry, batch_rows),
                          f"scoring {self._entry.name} with {model.name}", progress)
        if not parts:
            return model.predict(iter(()), progress=False)
        return pd.concat(parts, ignore_index=True)

    def map(self, fn: Callable[[Any], Any], *, progress: bool = True) -> list[Any]:
        """``fn(batch)`` on every partition's decrypted ``ArrayBatch`` (pixels and fields),
        on the workers; the results come back in partition order."""
        return self._run(map_image_partition,
                         lambda groups: (self._entry, groups, self._columns, fn),
                         f"map over {self._entry.name}", progress)
