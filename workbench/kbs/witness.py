"""The witness: signed checkpoints pushed out of the broker as its audit log grows.

A checkpoint the data owner fetches now and then (``workbench audit checkpoint``) anchors
the log up to that moment; a witness anchors it continuously. Settings: ``audit_witness``
(a directory, or an ``http(s)://`` URL that receives each checkpoint as a JSON POST),
``audit_checkpoint_every`` (records) and ``audit_checkpoint_interval_s`` (seconds).

* When a committed record's ``seq`` is a multiple of N, the process that appended it
  issues a checkpoint of that record. ``seq`` is global, so among replicas sharing a
  PostgreSQL store exactly one process issues each of these.
* Every T seconds each process issues a checkpoint of the head, if it moved since its last.

Pushing happens on a thread of its own, never on the request path: a release never waits
for the witness. A push that fails (or times out, after ``PUSH_TIMEOUT_S``) is logged and
retried; since each hash covers every record before it, the newest unsent checkpoint covers
all older ones, so only that one is kept for the retry and the queue stays bounded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from workbench.kbs import checkpoint
from workbench.kbs.audit import AuditRecord, read_head
from workbench.kbs.broker_key import BrokerKey
from workbench.kbs.store import Store
from workbench.sealing.atomic import atomic_output

log = logging.getLogger("workbench.kbs.witness")

PUSH_TIMEOUT_S = 5.0
RETRY_S = 10.0
# Checkpoints waiting to be pushed beyond this are dropped, oldest first (the newest
# covers them).
MAX_QUEUE = 64
STOP_TIMEOUT_S = PUSH_TIMEOUT_S + 2


class Target(Protocol):
    def push(self, issued: checkpoint.Checkpoint) -> None: ...

    def describe(self) -> str: ...


def checkpoint_name(seq: int) -> str:
    # Zero-padded, so a directory listing sorts by sequence.
    return f"checkpoint-{seq:012d}.json"


class DirectoryTarget:
    """One file per checkpoint, named by its sequence number, written atomically (0644)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def push(self, issued: checkpoint.Checkpoint) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.path / checkpoint_name(issued.seq), mode=0o644) as handle:
            handle.write((json.dumps(issued.to_json(), indent=2) + "\n").encode())

    def describe(self) -> str:
        return f"directory {self.path}"


class UrlTarget:
    """``POST`` of the checkpoint as JSON; any 2xx answer is an acknowledgement."""

    def __init__(self, url: str, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        self.url = url
        self._timeout_s = timeout_s

    def push(self, issued: checkpoint.Checkpoint) -> None:
        response = httpx.post(self.url, json=issued.to_json(), timeout=self._timeout_s)
        if not response.is_success:
            raise OSError(f"the witness answered HTTP {response.status_code}")

    def describe(self) -> str:
        return f"URL {self.url}"


def target_for(spec: str) -> Target:
    if spec.startswith(("http://", "https://")):
        return UrlTarget(spec)
    return DirectoryTarget(Path(spec))


class Witness:
    """Issues checkpoints (by count, on commit; by time, on its thread) and pushes them."""

    def __init__(self, target: Target, store: Store, key: BrokerKey, broker: str, *,
                 every: int, interval_s: float, clock: Callable[[], datetime],
                 retry_s: float = RETRY_S) -> None:
        self.target = target
        self._store, self._key, self._broker, self._clock = store, key, broker, clock
        self._every, self._interval_s, self._retry_s = every, interval_s, retry_s
        self._due: list[tuple[int, str]] = []
        self._unsent: checkpoint.Checkpoint | None = None
        self._last_seq = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Called by the store after each committed write transaction, on the request path:
    # it only takes note.
    def committed(self, notes: list[Any]) -> None:
        due = [(n.seq, n.hash) for n in notes
               if isinstance(n, AuditRecord) and n.seq % self._every == 0]
        if not due:
            return
        with self._lock:
            self._due.extend(due)
            del self._due[:-MAX_QUEUE]
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-witness", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S * 2)

    def _run(self) -> None:
        next_tick = time.monotonic() + self._interval_s
        while True:
            wait = next_tick - time.monotonic()
            if self._unsent is not None:
                wait = min(wait, self._retry_s)
            self._wake.wait(max(wait, 0))
            self._wake.clear()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._interval_s
                self._issue_head()
            self._push_due()
            if self._stopping.is_set():
                return

    def _issue_head(self) -> None:
        try:
            with self._store.read() as conn:
                head = read_head(conn)
        except Exception:  # the database may be restarting: try again next tick
            log.exception("audit witness: cannot read the chain head")
            return
        if head.seq > self._last_seq:
            with self._lock:
                self._due.append((head.seq, head.hash))

    def _push_due(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        issued = [checkpoint.issue(self._key, self._broker, seq, digest, self._clock())
                  for seq, digest in sorted(set(due))]
        if self._unsent is not None:
            issued.insert(0, self._unsent)
        for item in issued:
            try:
                self.target.push(item)
            except Exception as err:  # httpx.HTTPError, OSError: the witness's problem
                self._unsent = issued[-1]
                log.warning("audit witness %s: pushing the checkpoint of record %d failed "
                            "(%s); retrying that of record %d in %g s",
                            self.target.describe(), item.seq, err, self._unsent.seq,
                            self._retry_s)
                return
            self._last_seq = max(self._last_seq, item.seq)
        self._unsent = None


def witness_for(spec: str, store: Store, key: BrokerKey, broker: str, *, every: int,
                interval_s: float, clock: Callable[[], datetime]) -> Witness | None:
    """The witness the settings ask for (None without ``audit_witness``), wired to the
    store so that it hears of every committed record."""
    if not spec:
        return None
    witness = Witness(target_for(spec), store, key, broker, every=every,
                      interval_s=interval_s, clock=clock)
    store.after_commit = witness.committed
    return witness
