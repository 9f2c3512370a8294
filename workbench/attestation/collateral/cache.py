"""Collateral answers on disk, one file per exact request, shared by processes.

Each entry is one JSON file written atomically (temporary file, fsync, rename), so a
reader sees the old answer or the new one, never half of one. A lock file per key, taken
with ``flock`` (and a thread lock, as threads of one process share the process's view),
makes concurrent misses for one key send one request: the first fetches, the others wait
and then read what it wrote. Parsed answers are kept in memory per file version (inode,
size, mtime), so a warm read costs one ``stat``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workbench.attestation.collateral.items import Unreadable, read_answer
from workbench.attestation.collateral.requests import CollateralRequest

SUFFIX = ".json"


@dataclass(frozen=True)
class Entry:
    request: CollateralRequest
    url: str
    body: bytes
    chain: bytes
    fetched_at: datetime
    next_update: datetime
    value: Any = field(compare=False, repr=False)

    def usable(self, now: datetime) -> bool:
        return now <= self.next_update

    def to_json(self) -> str:
        r = self.request
        return json.dumps({
            "request": {"service": r.service, "kind": r.kind, "path": r.path,
                        "query": [list(q) for q in r.query], "chain_header": r.chain_header},
            "url": self.url, "body": base64.b64encode(self.body).decode(),
            "chain": self.chain.decode("ascii", "replace"),
            "fetched_at": self.fetched_at.isoformat(),
            "next_update": self.next_update.isoformat(),
        }, indent=1)


def make_entry(request: CollateralRequest, url: str, body: bytes, chain: bytes,
               fetched_at: datetime) -> Entry:
    """Raises Unreadable when ``body`` is not the collateral ``request`` asks for."""
    value, next_update = read_answer(request.kind, url, body)
    return Entry(request, url, body, chain, fetched_at, next_update, value)


def _entry_from_json(text: str) -> Entry:
    raw = json.loads(text)
    r = raw["request"]
    request = CollateralRequest(r["service"], r["kind"], r["path"],
                                tuple((k, v) for k, v in r["query"]), r["chain_header"])
    return make_entry(request, raw["url"], base64.b64decode(raw["body"]),
                      raw["chain"].encode("ascii"), datetime.fromisoformat(raw["fetched_at"]))


def read_entry_file(path: Path) -> Entry:
    """An entry file (from another cache); raises InputError naming it when unusable."""
    from workbench.errors import InputError, about

    try:
        return _entry_from_json(path.read_text())
    except OSError as err:
        raise InputError(about(path, f"cannot read: {err.strerror or err}")) from None
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(about(path, f"not a collateral cache entry ({err})")) from None
    except Unreadable as err:
        raise InputError(about(path, f"its collateral does not parse: {err}")) from None


class CollateralCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._memo: dict[str, tuple[tuple[int, int, int], Entry]] = {}
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + SUFFIX)

    def read(self, key: str) -> Entry | None:
        return self._read_path(self.path(key))

    def _read_path(self, path: Path) -> Entry | None:
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        name = path.name
        found = self._memo.get(name)
        if found is not None and found[0] == stamp:
            return found[1]
        try:
            entry = _entry_from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, Unreadable):
            return None  # a damaged entry is a miss: it is fetched again and replaced
        self._memo[name] = (stamp, entry)
        return entry

    def write(self, entry: Entry) -> None:
        path = self.path(entry.request.key)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(entry.to_json())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def entries(self) -> list[Entry]:
        found = (self._read_path(p) for p in sorted(self.folder.glob("*" + SUFFIX)))
        return [e for e in found if e is not None]

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Held by one thread of one process at a time for ``key``."""
        with self._guard:
            lock = self._thread_locks.setdefault(key, threading.Lock())
        lock_path = self.path(key).with_suffix(".lock")
        with lock, open(lock_path, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
