"""The pieces a prediction is made of: whatever the caller passes, as one stream of pieces.

A DataFrame, an Arrow table or record batch, an ArrayBatch, or an iterable of any of them
(``wb.scan_dataset``, ``wb.scan_images``); Arrow tables are split into their batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from workbench.inference.arrays import ArrayBatch

DEFAULT_BATCH_ROWS = 65_536
# Values that are one piece (or one table of pieces), not an iterable of pieces.
SINGLE = (pd.DataFrame, pa.RecordBatch, pa.Table, ArrayBatch)


def pieces(data: Any) -> Iterator[pd.DataFrame | pa.RecordBatch | ArrayBatch]:
    items: Iterable[Any] = [data] if isinstance(data, SINGLE) else data
    for item in items:
        if isinstance(item, pa.Table):
            yield from item.to_batches()
        elif isinstance(item, pd.DataFrame | pa.RecordBatch | ArrayBatch):
            yield item
        else:
            raise TypeError(f"expected DataFrames, Arrow record batches or ArrayBatch values, "
                            f"got {type(item).__name__}")
