"""The rows of a sealed image set: one 2-D image per row, its fields, and its identifiers.

Everything a reader (DICOM, NumPy arrays) produces lands in these columns, declared once
here as tables: which fields are clinical (sealed under the clinical key, readable by the
analyst) and which DICOM attributes identify a patient (sealed under the PHI key).

Volumes (a CT series, a multi-frame file, a 3-D array) are stored one slice per row; the
``volume`` and ``slice`` columns put them back together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

PIXEL_COLUMN = "pixels"
# Pixels are stored as this numpy dtype (little-endian float32), in modality units.
PIXEL_DTYPE = np.dtype("<f4")

# Identifying DICOM attributes: (DICOM keyword, column). Chosen from the attributes that
# DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile) removes or
# replaces and that image files commonly carry: names, ids, dates and times (which
# HIPAA's Safe Harbor also counts as identifiers), UIDs (which link back to the PACS),
# places, people, devices and free-text descriptions.
PHI_TAGS: tuple[tuple[str, str], ...] = (
    ("PatientName", "patient_name"),
    ("PatientID", "patient_id"),
    ("OtherPatientIDs", "other_patient_ids"),
    ("PatientBirthDate", "patient_birth_date"),
    ("PatientSex", "patient_sex"),
    ("PatientAge", "patient_age"),
    ("PatientAddress", "patient_address"),
    ("AccessionNumber", "accession_number"),
    ("StudyID", "study_id"),
    ("StudyInstanceUID", "study_instance_uid"),
    ("SeriesInstanceUID", "series_instance_uid"),
    ("SOPInstanceUID", "sop_instance_uid"),
    ("FrameOfReferenceUID", "frame_of_reference_uid"),
    ("StudyDate", "study_date"),
    ("StudyTime", "study_time"),
    ("SeriesDate", "series_date"),
    ("AcquisitionDate", "acquisition_date"),
    ("ContentDate", "content_date"),
    ("InstitutionName", "institution_name"),
    ("InstitutionAddress", "institution_address"),
    ("ReferringPhysicianName", "referring_physician_name"),
    ("PerformingPhysicianName", "performing_physician_name"),
    ("OperatorsName", "operators_name"),
    ("StationName", "station_name"),
    ("DeviceSerialNumber", "device_serial_number"),
    ("StudyDescription", "study_description"),
    ("SeriesDescription", "series_description"),
)
# The file an image came from: DICOM file names are often UIDs or patient names.
SOURCE_COLUMN = "source"
PHI_COLUMNS: tuple[str, ...] = (SOURCE_COLUMN, *(column for _, column in PHI_TAGS))

# Clinical fields: (column, Arrow type, meaning). Geometry and acquisition facts a model or
# an analysis needs, none of which names a patient.
CLINICAL_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("image", pa.int64(), "row number in the set, the id to join outputs on"),
    ("volume", pa.int32(), "which volume (series, multi-frame file, 3-D array) the slice is of"),
    ("slice", pa.int32(), "position of the slice in its volume, from 0"),
    ("format", pa.string(), "what the image was read from: dicom, npy or npz"),
    ("modality", pa.string(), "DICOM Modality (CT, MR, ...); empty for arrays"),
    ("units", pa.string(), "units of the pixel values (HU for CT), empty if unknown"),
    ("body_part", pa.string(), "DICOM BodyPartExamined"),
    ("photometric", pa.string(), "DICOM PhotometricInterpretation (MONOCHROME1: high is dark)"),
    ("spacing_row_mm", pa.float64(), "distance between rows (mm), after any resampling"),
    ("spacing_col_mm", pa.float64(), "distance between columns (mm), after any resampling"),
    ("slice_thickness_mm", pa.float64(), "DICOM SliceThickness"),
    ("slice_position_mm", pa.float64(), "position along the slice normal (orders a series)"),
    ("window_center", pa.float64(), "DICOM WindowCenter (first value): a display default"),
    ("window_width", pa.float64(), "DICOM WindowWidth (first value)"),
    ("original_height", pa.int32(), "rows of the image as read, before any resampling"),
    ("original_width", pa.int32(), "columns of the image as read"),
)
CLINICAL_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in CLINICAL_FIELDS)
# Filled by the sealing step itself, not by a reader.
ASSIGNED_COLUMNS = frozenset({"image", "volume", "slice", "original_height", "original_width"})


@dataclass
class Slice:
    """One 2-D image as a reader produced it: pixels in modality units and its fields."""

    pixels: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    identifiers: dict[str, str | None] = field(default_factory=dict)


def row_schema(shape: tuple[int, int]) -> pa.Schema:
    """The Arrow schema of a set whose images are ``shape`` (rows, columns)."""
    width = int(np.prod(shape)) * PIXEL_DTYPE.itemsize
    return pa.schema(
        [pa.field(name, kind) for name, kind, _ in CLINICAL_FIELDS]
        + [pa.field(PIXEL_COLUMN, pa.binary(width), nullable=False)]
        + [pa.field(name, pa.string()) for name in PHI_COLUMNS]
    )
