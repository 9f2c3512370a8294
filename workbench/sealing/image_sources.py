"""Which images a set is made of, in which order, and at which shape.

``plan_images`` looks at the files and directories the data owner names (DICOM headers,
NumPy array headers: no pixels decoded), groups DICOM slices into volumes by series and
orders them along the slice normal, and checks that every image has the set's shape
before anything is sealed. ``planned_slices`` then reads one file at a time, so sealing
holds one volume in memory, not the set.

One set, one shape: a model takes a fixed-size tensor, and a set that silently mixed sizes
would fail half-way through a scan. The owner either seals each shape as its own set or
asks for every image to be resampled to one shape (``shape=``), recorded in the rows.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.errors import InputError, about
from workbench.sealing.dicom import (
    DicomHeader,
    NotAnImage,
    is_dicom,
    read_header,
    read_slices,
)
from workbench.sealing.image_rows import PHI_TAGS, SOURCE_COLUMN, Slice

ARRAY_SUFFIXES = (".npy", ".npz")
# numpy kinds an image can be made of: bool, signed and unsigned integers, floats.
_PIXEL_KINDS = frozenset("biuf")


@dataclass(frozen=True)
class Planned:
    """One file (or one array of an .npz) and where its slices go in the set."""

    path: Path
    source: str  # how the row names its file (the PHI 'source' column)
    kind: str  # dicom | npy | npz
    shape: tuple[int, int]
    slices: int
    volume: int = 0
    member: str | None = None  # the array's name inside an .npz
    header: DicomHeader | None = None  # a DICOM file's header, read while planning


@dataclass
class ImagePlan:
    items: list[Planned]
    shape: tuple[int, int]
    resample: bool
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(item.slices for item in self.items)


def _array_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype, name: str = ""
                 ) -> tuple[tuple[int, int], int]:
    what = f"array '{name}'" if name else "array"
    if dtype.kind not in _PIXEL_KINDS:
        raise InputError(about(path, f"{what} holds {dtype}, not numbers an image is made of"))
    if len(shape) == 2:
        return (shape[0], shape[1]), 1
    if len(shape) == 3:
        return (shape[1], shape[2]), shape[0]
    raise InputError(about(path, f"{what} has shape {shape}: an image is 2-D (rows, "
                                 "columns), a volume 3-D (slices, rows, columns)"))


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(about(path, f"not a readable .npy array ({err})")) from None
    return array.shape, array.dtype


def _plan_npz(path: Path, source: str) -> list[Planned]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = [(name, archive[name]) for name in archive.files]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(about(path, f"not a readable .npz archive ({err})")) from None
    if not members:
        raise InputError(about(path, "the .npz archive holds no arrays"))
    planned = []
    for name, array in members:
        shape, slices = _array_shape(path, array.shape, array.dtype, name)
        planned.append(Planned(path, f"{source}:{name}", "npz", shape, slices, member=name))
    return planned


def _plan_file(path: Path, source: str, *, in_directory: bool,
               skipped: list[tuple[str, str]]) -> list[Planned]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        shape, slices = _array_shape(path, *_npy_header(path))
        return [Planned(path, source, "npy", shape, slices)]
    if suffix == ".npz":
        return _plan_npz(path, source)
    if in_directory and not is_dicom(path):
        skipped.append((str(path), "not a DICOM file or a NumPy array"))
        return []
    try:
        header = read_header(path)
    except NotAnImage as err:
        if not in_directory:
            raise
        # A DICOMDIR or a report next to the images is expected; say so, skip it.
        skipped.append((str(path), str(err).removeprefix(f"{path}: ")))
        return []
    return [Planned(path, source, "dicom", header.shape, header.frames, header=header)]


def _files(source: Path) -> Iterator[tuple[Path, str, bool]]:
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            yield path, str(path.relative_to(source)), True
    elif source.exists():
        yield source, source.name, False
    else:
        raise InputError(about(source, "file or directory not found"))


def _volumes(items: list[Planned]) -> list[Planned]:
    """Order the items and number their volumes: single-frame DICOM files by series.

    A series' slices are ordered by position along the slice normal, then instance
    number, then file name; every other item (multi-frame DICOM, an array) is a volume
    of its own. Volumes keep the order in which their first file was found.
    """
    groups: dict[tuple[str, object], list[Planned]] = {}
    for number, item in enumerate(items):
        series = item.header.series if item.header is not None else None
        key = ("series", series) if series and item.slices == 1 else ("own", number)
        groups.setdefault(key, []).append(item)

    def order(item: Planned) -> tuple[bool, float, bool, int, str]:
        position = item.header.position if item.header is not None else None
        instance = item.header.instance if item.header is not None else None
        return (position is None, position or 0.0, instance is None, instance or 0,
                item.source)

    ordered = []
    for volume, members in enumerate(groups.values()):
        for item in sorted(members, key=order):
            ordered.append(Planned(item.path, item.source, item.kind, item.shape, item.slices,
                                   volume, item.member, item.header))
    return ordered


def _describe(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def plan_images(sources: Sequence[str | Path], *, shape: tuple[int, int] | None = None
                ) -> ImagePlan:
    """Find the images in ``sources`` (files and directories) and check their shapes."""
    if not sources:
        raise InputError("name at least one DICOM file, NumPy array or directory of them")
    if shape is not None and (len(shape) != 2 or min(shape) < 1):
        raise InputError(f"shape must be (rows, columns) of at least 1, not {shape}")
    items: list[Planned] = []
    skipped: list[tuple[str, str]] = []
    for source in sources:
        found = []
        for path, name, in_directory in _files(Path(source)):
            found += _plan_file(path, name, in_directory=in_directory, skipped=skipped)
        if not found:
            raise InputError(about(source, "no DICOM images or NumPy arrays found"))
        items += found
    items = _volumes(items)
    if shape is None:
        first = items[0]
        for item in items:
            if item.shape != first.shape:
                raise InputError(about(item.path, (
                    f"image is {_describe(item.shape)}, but the set's images are "
                    f"{_describe(first.shape)} (like {first.path}): images of one set "
                    "share a shape; seal each shape as its own set, or resample them all "
                    "with shape=(rows, columns)")))
        return ImagePlan(items, first.shape, resample=False, skipped=skipped)
    return ImagePlan(items, (int(shape[0]), int(shape[1])), resample=True, skipped=skipped)


def _array_slices(item: Planned) -> list[Slice]:
    if item.kind == "npy":
        array = np.load(item.path, allow_pickle=False)
    else:
        with np.load(item.path, allow_pickle=False) as archive:
            array = archive[item.member]
    frames = array[None] if array.ndim == 2 else array
    fields = {"format": item.kind, "modality": "", "units": "", "body_part": "",
              "photometric": ""}
    return [Slice(np.ascontiguousarray(frame, dtype=np.float32), dict(fields), {})
            for frame in frames]


def resample(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear resampling to ``shape``, smoothed first along axes that shrink.

    The Gaussian before shrinking (sigma (factor - 1) / 2, as scikit-image's ``resize``
    does) keeps fine structure from aliasing into the smaller image.
    """
    from scipy import ndimage

    factors = [target / size for target, size in zip(shape, pixels.shape, strict=True)]
    sigma = [max(0.0, (1 / f - 1) / 2) for f in factors]
    smoothed = ndimage.gaussian_filter(pixels, sigma, mode="nearest") if any(sigma) else pixels
    out = ndimage.zoom(smoothed, factors, order=1, mode="nearest", grid_mode=True)
    if out.shape != tuple(shape):  # zoom rounds each size; never expected to differ
        raise InputError(f"resampling {pixels.shape} gave {out.shape}, not {tuple(shape)}")
    return np.ascontiguousarray(out, dtype=np.float32)


def planned_slices(plan: ImagePlan) -> Iterator[Slice]:
    """Each slice of the plan, in order, with its set-wide fields filled in."""
    image = 0
    next_slice: dict[int, int] = {}  # a series' files continue one volume
    for item in plan.items:
        read = read_slices(item.header) if item.header is not None else _array_slices(item)
        for piece in read:
            number = next_slice.get(item.volume, 0)
            next_slice[item.volume] = number + 1
            height, width = piece.pixels.shape
            if (height, width) != plan.shape:
                if not plan.resample:
                    raise InputError(about(item.path, f"image is {height}x{width}, the set's "
                                                        f"are {_describe(plan.shape)}"))
                factor_row, factor_col = height / plan.shape[0], width / plan.shape[1]
                piece.pixels = resample(piece.pixels, plan.shape)
                for key, factor in (("spacing_row_mm", factor_row),
                                    ("spacing_col_mm", factor_col)):
                    if piece.fields.get(key) is not None:
                        piece.fields[key] = piece.fields[key] * factor
            piece.fields.update(image=image, volume=item.volume, slice=number,
                                original_height=height, original_width=width)
            piece.identifiers = {column: piece.identifiers.get(column)
                                 for _, column in PHI_TAGS}
            piece.identifiers[SOURCE_COLUMN] = item.source
            image += 1
            yield piece
