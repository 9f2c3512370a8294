"""Timing shared by the benchmarks: medians of repeated calls, warmed once."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(
    call: Callable[[], object], iterations: int, before: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of ``call`` in milliseconds; ``before`` runs untimed before each."""
    call()  # warm imports and lazy loads; a cold measurement empties caches in ``before``
    samples = []
    for _ in range(iterations):
        before()
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6
