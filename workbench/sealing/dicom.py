"""DICOM files into image rows: pixels in modality units, geometry, and identifying tags.

Two passes, so a set of thousands of files is planned without decoding any pixels:
``read_header`` (no pixel data) says what a file holds and where it belongs in its series;
``read_slices`` decodes the pixels and applies the Modality LUT / Rescale Slope and
Intercept, so CT values are Hounsfield units whatever the scanner stored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import InputError, about
from workbench.sealing.image_rows import PHI_TAGS, Slice

# A DICOM Part 10 file: a 128-byte preamble, then these four bytes.
DICOM_MAGIC = b"DICM"
_MAGIC_OFFSET = 128


@dataclass(frozen=True)
class DicomHeader:
    path: Path
    series: str | None
    position: float | None  # along the slice normal, mm: orders the slices of a series
    instance: int | None
    frames: int
    shape: tuple[int, int]


def is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file by its magic (how a directory's files are told apart)."""
    try:
        with path.open("rb") as handle:
            handle.seek(_MAGIC_OFFSET)
            return handle.read(len(DICOM_MAGIC)) == DICOM_MAGIC
    except OSError:
        return False


class NotAnImage(InputError):
    """A valid DICOM object without pixel data (DICOMDIR, structured report, RT plan...)."""


def _dataset(path: Path, *, pixels: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            # pydicom warns about benign deviations (padding, VR mismatches) it repairs.
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as err:
        raise InputError(about(path, f"not a DICOM file ({_first_line(err)})")) from None
    except FileNotFoundError:
        raise InputError(about(path, "file not found")) from None
    except (OSError, EOFError, ValueError, TypeError, KeyError) as err:
        raise InputError(about(path, f"DICOM file is damaged or truncated "
                                     f"({_first_line(err)})")) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _check_image(path: Path, ds: Any, *, pixels: bool) -> None:
    """Refuse what cannot be one channel of numbers per pixel, naming what the file is.

    Without its pixels (the header pass) a dataset is an image if it has the Image Pixel
    module's size; with them, if it has pixel data.
    """
    present = any(k in ds for k in _PIXEL_DATA) if pixels else "Rows" in ds and "Columns" in ds
    if not present:
        meta = getattr(ds, "file_meta", None)
        sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta
                                              else None)
        what = sop_class.name if sop_class else "no SOP class"
        raise NotAnImage(about(path, f"DICOM object without pixel data ({what})"))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if samples != 1 or photometric.startswith(("PALETTE", "RGB", "YBR")):
        plural = "s" if samples != 1 else ""
        raise InputError(about(path, f"colour image ({photometric or '?'}, {samples} "
                                     f"sample{plural} per pixel): an image set holds "
                                     "single-channel (MONOCHROME) images"))
    if "PerFrameFunctionalGroupsSequence" in ds:
        # Enhanced multi-frame objects keep rescale and geometry per frame, in functional
        # groups; applying the top-level values would give wrong units silently.
        raise InputError(about(path, "enhanced multi-frame DICOM (per-frame functional "
                                     "groups) is not supported: convert it to single-frame "
                                     "files first"))


def _floats(value: Any) -> list[float] | None:
    if value is None:
        return None
    try:
        items = list(value) if isinstance(value, Sequence | np.ndarray) and not isinstance(
            value, str) else [value]
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _position(ds: Any) -> float | None:
    orientation = _floats(ds.get("ImageOrientationPatient"))
    position = _floats(ds.get("ImagePositionPatient"))
    if not orientation or len(orientation) != 6 or not position or len(position) != 3:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(normal, position))


def read_header(path: Path) -> DicomHeader:
    """What the file holds, without its pixels; refuses files that are not usable images."""
    ds = _dataset(path, pixels=False)
    _check_image(path, ds, pixels=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are converted on access, and checked here
        try:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            shape = (int(ds.Rows), int(ds.Columns))
        except (AttributeError, TypeError, ValueError) as err:
            raise InputError(about(path, f"DICOM image without a usable size ({err})")
                             ) from None
        try:
            instance = int(ds.get("InstanceNumber"))
        except (TypeError, ValueError):
            instance = None
        series = ds.get("SeriesInstanceUID")
        return DicomHeader(path, str(series) if series else None, _position(ds), instance,
                           frames, shape)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        text = "\\".join(str(v) for v in value)  # DICOM's own separator of values
    else:
        text = str(value)
    return text.strip() or None


def _first(value: Any) -> float | None:
    values = _floats(value)
    return values[0] if values else None


def _spacing(ds: Any) -> tuple[float, float]:
    # PixelSpacing is in the patient; projection radiographs may have only the detector's.
    values = _floats(ds.get("PixelSpacing")) or _floats(ds.get("ImagerPixelSpacing"))
    if values and len(values) == 2:
        return values[0], values[1]
    return math.nan, math.nan


def _units(ds: Any) -> str:
    if str(ds.get("Modality", "")) == "RTDOSE" and ds.get("DoseGridScaling") is not None:
        return str(ds.get("DoseUnits", "") or "")
    if ds.get("RescaleType"):
        return str(ds.RescaleType)
    # CT Image IOD: rescaled values are Hounsfield units (PS3.3 C.11.1.1.2).
    return "HU" if str(ds.get("Modality", "")) == "CT" else ""


def _fields(ds: Any) -> dict[str, Any]:
    row, column = _spacing(ds)
    return {
        "format": "dicom",
        "modality": str(ds.get("Modality", "") or ""),
        "units": _units(ds),
        "body_part": str(ds.get("BodyPartExamined", "") or ""),
        "photometric": str(ds.get("PhotometricInterpretation", "") or ""),
        "spacing_row_mm": row,
        "spacing_col_mm": column,
        "slice_thickness_mm": _first(ds.get("SliceThickness")),
        "slice_position_mm": _position(ds),
        "window_center": _first(ds.get("WindowCenter")),
        "window_width": _first(ds.get("WindowWidth")),
    }


def identifiers(ds: Any) -> dict[str, str | None]:
    """The identifying attributes of ``ds``, by column (None where the file has none)."""
    return {column: _text(ds.get(keyword)) for keyword, column in PHI_TAGS}


def read_slices(header: DicomHeader) -> list[Slice]:
    """Decode the pixels of one file: one slice per frame, values in modality units."""
    from pydicom.pixels import apply_modality_lut

    path = header.path
    ds = _dataset(path, pixels=True)
    _check_image(path, ds, pixels=True)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = ds.pixel_array
            values = apply_modality_lut(stored, ds)
            scaling = ds.get("DoseGridScaling") if ds.get("Modality") == "RTDOSE" else None
            if scaling is not None:
                # RT Dose keeps its unit (Gy) scale here, not in a Modality LUT (C.8.8.3).
                values = values * float(scaling)
    except (RuntimeError, NotImplementedError, ValueError, TypeError, AttributeError) as err:
        encoding = f"transfer syntax {syntax.name}" if syntax else "unknown transfer syntax"
        raise InputError(about(path, f"pixel data cannot be decoded ({encoding}: "
                                     f"{_first_line(err)})")) from None
    frames = values.reshape((-1, *values.shape[-2:])) if values.ndim == 3 else values[None]
    if frames.shape[0] != header.frames or frames.shape[1:] != header.shape:
        raise InputError(about(path, f"pixel data holds {frames.shape[0]} frame(s) of "
                                     f"{frames.shape[1]}x{frames.shape[2]}, the header says "
                                     f"{header.frames} of {header.shape[0]}x{header.shape[1]}"))
    fields, tags = _fields(ds), identifiers(ds)
    if len(frames) > 1:
        # The top-level position is the first frame's; the others' live in functional groups.
        fields["slice_position_mm"] = None
    return [Slice(np.ascontiguousarray(frame, dtype=np.float32), dict(fields), dict(tags))
            for frame in frames]
