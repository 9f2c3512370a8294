"""JSON objects without duplicate keys, the one hook every strict reader here uses.

Python's ``json`` keeps the last of two equal keys; a verifier and a policy author who read
different values from the same bytes is how checks get bypassed, so duplicates are refused.
Each caller keeps its own error: ``on_duplicate`` makes the exception for a repeated key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

ObjectHook = Callable[[list[tuple[str, Any]]], dict[str, Any]]


class DuplicateKey(ValueError):
    """A JSON object names the same key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key '{key}'")
        self.key = key


def unique_keys(on_duplicate: Callable[[str], Exception] = DuplicateKey) -> ObjectHook:
    """An ``object_pairs_hook`` that raises ``on_duplicate(key)`` for a repeated key."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):  # rare: find which key repeats, to name it
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise on_duplicate(key)
                seen.add(key)
        return result

    return hook


def loads(text: str | bytes, *, on_duplicate: Callable[[str], Exception] = DuplicateKey,
          **options: Any) -> Any:
    """``json.loads`` refusing duplicate keys; ``options`` go to ``json.loads`` as they are."""
    return json.loads(text, object_pairs_hook=unique_keys(on_duplicate), **options)
