"""Names the cluster tests share with their fixtures (conftest.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A cohort in many row groups, so a scan spans many partitions.
WIDE = "wide"
WIDE_ROWS, WIDE_GROUP = 60_000, 3_000
# Copies of the CT slices in row groups of a few images: an image set of several partitions.
MANY_SLICES = "ct-many"
SLICE_COPIES, SLICES_PER_GROUP = 6, 4
