"""Partitions done, as a progress bar (the kernel's own bar style: widget or text)."""

from __future__ import annotations

from typing import Any

from workbench.inference.progress import progress_bar


def partitions_bar(total: int, what: str) -> Any:
    bar = progress_bar(total, what)
    bar.unit = " partitions"
    bar.unit_scale = False
    return bar
