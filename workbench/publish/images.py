"""An image set to publish: DICOM files, NumPy arrays or directories of them.

The images are planned (found, ordered, shapes checked) before anything is written; sealing
reads them again, one row group at a time, so a large set is never held whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.sealing.image_rows import PIXEL_COLUMN, row_schema
from workbench.sealing.image_sources import ImagePlan, plan_images, planned_slices
from workbench.sealing.images import (
    COMPRESSION,
    image_set_info,
    image_table,
    pixels_of,
    scan_images,
    seal_images,
)
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeyUnavailable


@dataclass(frozen=True)
class ImageAsset:
    name: str
    sources: tuple[Path, ...]
    plan: ImagePlan
    shape: tuple[int, int] | None
    compression: str = COMPRESSION

    @classmethod
    def read(cls, source: str | Path | Sequence[str | Path], name: str, *,
             shape: tuple[int, int] | None = None, compression: str = COMPRESSION
             ) -> ImageAsset:
        """Plan the images of ``source``: one file or directory, or several."""
        sources = (Path(source),) if isinstance(source, str | Path) else tuple(
            Path(s) for s in source)
        return cls(name, sources, plan_images(sources, shape=shape), shape, compression)

    def seal(self, out: Path, keyring: Keyring) -> None:
        seal_images(self.sources, out, keyring=keyring, dataset=self.name, shape=self.shape,
                    compression=self.compression)

    def same_as(self, sealed: Path, keyring: Keyring) -> bool:
        """Whether ``sealed`` holds these images and row fields, batch by batch."""
        try:
            info = image_set_info(sealed, keyring)
            if info.shape != self.plan.shape or info.rows != self.plan.rows:
                return False
            schema = row_schema(self.plan.shape)
            expected = planned_slices(self.plan)
            for pixels, frame in scan_images(sealed, keyring, columns=list(info.columns)):
                table = image_table(list(itertools.islice(expected, len(pixels))), schema)
                if not frame.equals(table.select(list(info.columns)).to_pandas()):
                    return False
                if (pixels != pixels_of(table.column(PIXEL_COLUMN), info.shape)).any():
                    return False
            return next(expected, None) is None
        except (WorkbenchError, KeyUnavailable):
            return False
