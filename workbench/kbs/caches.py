"""What one broker process remembers between requests, each cache bounded.

The store is the truth (replicas behind a load balancer share it); these only spare a
process the work of reading and re-judging what it has seen recently. A miss is always
answered from the store, so evicting an entry changes speed, never an answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

CACHE_ENTRIES = 20_000
# Policies are few (one per resource, mostly shared); their texts are the keys.
POLICY_ENTRIES = 1024


class Lru:
    """A thread-safe mapping that forgets its least recently used entry beyond ``size``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def pop(self, key: Any) -> None:
        with self._lock:
            self._items.pop(key, None)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class BrokerCaches:
    def __init__(self) -> None:
        # session id -> Session, attested (kbs.sessions)
        self.sessions = Lru(CACHE_ENTRIES)
        # session id -> Challenged, between auth and attest (kbs.sessions)
        self.challenges = Lru(CACHE_ENTRIES)
        # (session id, policy text) -> Appraisal of that session's evidence (kbs.appraisal)
        self.appraisals = Lru(CACHE_ENTRIES)
        # policy text -> Policy, parsed (kbs.appraisal)
        self.policies = Lru(POLICY_ENTRIES)
