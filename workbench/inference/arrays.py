"""Array inputs: one batch of tensors (images, volumes, sequences) and the rows they belong to.

A model whose card feeds an input from an ``array`` (not from table columns) scores
``ArrayBatch`` values: each array's first axis is the row, and ``frame`` holds the row's
tabular fields (an image's id, modality, spacing...), so outputs can be joined back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ArrayBatch:
    arrays: Mapping[str, np.ndarray]
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        counts = {name: len(a) for name, a in self.arrays.items()}
        if len(self.frame.columns) and len(self.frame) not in (*counts.values(), 0):
            counts["(row fields)"] = len(self.frame)
        if len(set(counts.values())) > 1:
            raise ValueError("arrays of one batch must have the same number of rows: "
                             + ", ".join(f"{k} {v}" for k, v in counts.items()))

    @property
    def rows(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else len(self.frame)
