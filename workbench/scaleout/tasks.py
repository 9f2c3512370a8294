"""What runs on a worker: its own keys (fetched with its own attested key), its own reads.

A worker process holds one :class:`WorkerKeys` (``install`` at start). Tasks receive only
coordinates: the catalog entry (a path on storage the worker mounts, the resources it is
sealed under) and row-group numbers; the worker asks the broker for the keys that entry
needs the first time a task reads it, decrypts the row groups in memory, and returns result
columns. Keys live in this process's memory only, and die with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from workbench.brokerclient import BrokerClient, BrokerError
from workbench.kernel.catalog import Entry
from workbench.sealing.keys import KeyUnavailable

# One onnxruntime call per batch; a partition holds several.
TASK_BATCH_ROWS = 65_536


class WorkerKeys:
    """The worker's broker client, the keys each entry may use, its decrypted models."""

    def __init__(self, client: BrokerClient, name: str) -> None:
        self.client = client
        self.name = name
        self._models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def for_entry(self, entry: Entry) -> EntryKeys:
        return EntryKeys(self.client, entry)

    def model(self, entry: Entry) -> Any:
        from workbench.inference.model import load_sealed_model

        with self._lock:
            key = (str(entry.path), entry.name)
            if key not in self._models:
                self._models[key] = load_sealed_model(entry.path, entry.name,
                                                      self.for_entry(entry))
            return self._models[key]


class EntryKeys:
    """Only the keys ``entry`` is sealed under: a swapped file asks for no other key."""

    def __init__(self, client: BrokerClient, entry: Entry) -> None:
        self._client = client
        self._entry = entry

    def get_key(self, resource: str) -> bytes:
        if resource not in self._entry.resources:
            raise KeyUnavailable(resource, f"{self._entry.kind} '{self._entry.name}' is "
                                           f"sealed under {' and '.join(self._entry.resources)}")
        try:
            return self._client.get_key(resource)
        except BrokerError as err:
            raise KeyUnavailable(resource, str(err)) from None


_worker: dict[str, WorkerKeys] = {}


def install(keys: WorkerKeys) -> None:
    _worker["keys"] = keys


def worker_keys() -> WorkerKeys:
    try:
        return _worker["keys"]
    except KeyError:
        raise RuntimeError("not a workbench cluster worker: this process never attested") \
            from None


def read_partition(entry: Entry, row_groups: Sequence[int], columns: Sequence[str] | None,
                   batch_rows: int = TASK_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The row groups of a sealed table, decrypted here, one batch at a time."""
    from workbench.sealing.table import open_parquet, opening_errors

    parquet = open_parquet(entry.path, worker_keys().for_entry(entry))
    with opening_errors(entry.path):
        # Decoded on the task's thread: a worker is one core's worth of work.
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=list(row_groups),
                                        columns=list(columns) if columns is not None else None,
                                        use_threads=False)


def score_partition(dataset: Entry, row_groups: Sequence[int], model: Entry,
                    batch_rows: int = TASK_BATCH_ROWS) -> dict[str, np.ndarray]:
    """The model's result columns for these row groups (outputs only: compact)."""
    scorer = worker_keys().model(model)
    frame = scorer.predict(read_partition(dataset, row_groups, scorer.features, batch_rows),
                           batch_rows=batch_rows, progress=False, threads=1)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def map_partition(dataset: Entry, row_groups: Sequence[int], columns: Sequence[str] | None,
                  fn: Callable[[pa.Table], Any]) -> Any:
    """``fn`` of the partition's decrypted table; only its result leaves the worker."""
    batches = list(read_partition(dataset, row_groups, columns))
    return fn(pa.Table.from_batches(batches) if batches else pa.table({}))


def read_image_partition(entry: Entry, row_groups: Sequence[int], columns: Sequence[str] | None,
                         batch_rows: int | None = None) -> Iterator[Any]:
    """The images of these row groups, decrypted here, as ``ArrayBatch`` batches."""
    from workbench.inference.arrays import ArrayBatch
    from workbench.sealing.images import scan_images

    for pixels, frame in scan_images(entry.path, worker_keys().for_entry(entry),
                                     batch_rows=batch_rows, columns=columns,
                                     row_groups=row_groups, use_threads=False):
        yield ArrayBatch({"pixels": pixels}, frame)


def score_image_partition(images: Entry, row_groups: Sequence[int],
                          columns: Sequence[str] | None, read_rows: int | None, model: Entry,
                          batch_rows: int) -> pd.DataFrame:
    """The rows' fields and the model's outputs for these images (never the pixels):
    read ``read_rows`` images at a time, scored ``batch_rows`` at a time."""
    scorer = worker_keys().model(model)
    return scorer.predict(read_image_partition(images, row_groups, columns, read_rows),
                          batch_rows=batch_rows, progress=False, threads=1)


def map_image_partition(images: Entry, row_groups: Sequence[int],
                        columns: Sequence[str] | None, fn: Callable[[Any], Any]) -> Any:
    """``fn`` of the partition's images as one ``ArrayBatch``; only its result leaves."""
    from workbench.inference.arrays import ArrayBatch

    batches = list(read_image_partition(images, row_groups, columns))
    if not batches:
        return fn(ArrayBatch({"pixels": np.empty((0, 1, 0, 0), np.float32)}))
    return fn(ArrayBatch({"pixels": np.concatenate([b.arrays["pixels"] for b in batches])},
                         pd.concat([b.frame for b in batches], ignore_index=True)))
