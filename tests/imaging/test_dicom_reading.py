"""Reading DICOM files, directories and NumPy arrays into image rows (pydicom's real files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from workbench.errors import InputError
from workbench.sealing.dicom import read_header, read_slices
from workbench.sealing.image_rows import PHI_COLUMNS
from workbench.sealing.image_sources import plan_images, planned_slices

DATA = Path(get_testdata_file("CT_small.dcm", download=False)).parent


def _rows(*sources, **options):
    return list(planned_slices(plan_images([*sources], **options)))


def test_ct_pixels_are_hounsfield_units_with_geometry_and_tags():
    [ct] = read_slices(read_header(DATA / "CT_small.dcm"))
    raw = pydicom.dcmread(DATA / "CT_small.dcm")
    assert ct.pixels.dtype == np.float32 and ct.pixels.shape == (128, 128)
    # Rescale Slope 1, Intercept -1024: stored values shifted into HU.
    assert (raw.RescaleSlope, raw.RescaleIntercept) == (1, -1024)
    np.testing.assert_array_equal(ct.pixels, raw.pixel_array.astype(np.float32) - 1024)
    assert ct.pixels.min() == -896 and ct.pixels.max() == 1167
    fields = ct.fields
    assert (fields["modality"], fields["units"], fields["format"]) == ("CT", "HU", "dicom")
    assert fields["spacing_row_mm"] == pytest.approx(0.661468)
    assert fields["slice_thickness_mm"] == 5.0
    assert ct.identifiers["patient_name"] == "CompressedSamples^CT1"
    assert ct.identifiers["patient_id"] == "1CT1"
    assert ct.identifiers["sop_instance_uid"] == raw.SOPInstanceUID
    assert set(ct.identifiers) | {"source"} == set(PHI_COLUMNS)


def test_mr_without_rescale_keeps_its_values_and_has_no_units():
    [mr] = read_slices(read_header(DATA / "MR_small.dcm"))
    raw = pydicom.dcmread(DATA / "MR_small.dcm")
    np.testing.assert_array_equal(mr.pixels, raw.pixel_array.astype(np.float32))
    assert (mr.fields["modality"], mr.fields["units"]) == ("MR", "")
    # The big-endian copy of the same image reads to the same numbers.
    [big] = read_slices(read_header(DATA / "MR_small_bigendian.dcm"))
    np.testing.assert_array_equal(big.pixels, mr.pixels)


def test_a_multi_frame_file_is_one_volume_of_slices_in_its_units():
    rows = _rows(DATA / "rtdose.dcm")
    raw = pydicom.dcmread(DATA / "rtdose.dcm")
    assert len(rows) == 15 and {r.fields["volume"] for r in rows} == {0}
    assert [r.fields["slice"] for r in rows] == list(range(15))
    assert rows[0].fields["units"] == str(raw.DoseUnits)
    np.testing.assert_allclose(rows[3].pixels, raw.pixel_array[3] * float(raw.DoseGridScaling),
                               rtol=1e-6)


def test_a_directory_groups_series_into_volumes_ordered_along_the_normal():
    plan = plan_images([DATA / "dicomdirtests"])
    # DICOMDIR files are listed next to the images: skipped, and said so.
    assert any(path.endswith("DICOMDIR") and "without pixel data (Media Storage Directory"
               in reason for path, reason in plan.skipped)
    rows = list(planned_slices(plan))
    series = [r for r in rows if r.identifiers["source"].startswith("98892001/CT5N/")]
    assert len(series) == 5 and len({r.fields["volume"] for r in series}) == 1
    positions = [r.fields["slice_position_mm"] for r in series]
    assert positions == sorted(positions) and positions[0] < positions[-1]
    assert [r.fields["slice"] for r in series] == [0, 1, 2, 3, 4]
    assert [r.fields["image"] for r in rows] == list(range(len(rows)))


def test_arrays_are_images_without_tags(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(12, dtype=np.int16).reshape(3, 4))
    np.save(tmp_path / "stack.npy", np.ones((5, 3, 4), dtype=np.float64))
    np.savez(tmp_path / "pair.npz", a=np.zeros((3, 4)), b=np.full((2, 3, 4), 7, np.uint8))
    rows = _rows(tmp_path)
    assert len(rows) == 1 + 2 + 1 + 5
    assert {r.fields["format"] for r in rows} == {"npy", "npz"}
    assert [r.identifiers["source"] for r in rows[:3]] == ["one.npy", "pair.npz:a",
                                                           "pair.npz:b"]
    assert all(v is None for r in rows for k, v in r.identifiers.items() if k != "source")
    np.testing.assert_array_equal(rows[0].pixels, np.arange(12).reshape(3, 4))
    assert len({r.fields["volume"] for r in rows}) == 4  # one.npy, a, b, stack.npy


def test_images_of_another_shape_are_refused_naming_file_and_shapes():
    with pytest.raises(InputError) as refused:
        plan_images([DATA / "CT_small.dcm", DATA / "693_J2KI.dcm"])
    message = str(refused.value)
    assert message.startswith(f"{DATA / '693_J2KI.dcm'}: image is 512x512, but the set's "
                              f"images are 128x128 (like {DATA / 'CT_small.dcm'})")
    assert "seal each shape as its own set, or resample them all" in message


def test_resampling_to_one_shape_is_explicit_and_recorded():
    rows = _rows(DATA / "CT_small.dcm", DATA / "693_J2KI.dcm", shape=(256, 256))
    assert [r.pixels.shape for r in rows] == [(256, 256)] * 2
    small, large = rows
    assert (small.fields["original_height"], large.fields["original_width"]) == (128, 512)
    assert small.fields["spacing_row_mm"] == pytest.approx(0.661468 / 2)
    assert large.fields["spacing_col_mm"] == pytest.approx(0.478516 * 2)
    # Linear resampling keeps the values in range: air stays air, no ringing below it.
    assert small.pixels.min() >= -896 - 1e-3 and small.pixels.max() <= 1167 + 1e-3


@pytest.mark.parametrize(("name", "cause"), [
    ("ExplVR_BigEnd.dcm", "colour image (RGB, 3 samples per pixel): an image set holds "
                          "single-channel (MONOCHROME) images"),
    ("examples_palette.dcm", "colour image (PALETTE COLOR, 1 sample per pixel)"),
    ("rtplan.dcm", "DICOM object without pixel data (RT Plan Storage)"),
    ("README.txt", "not a DICOM file (File is missing DICOM File Meta Information"),
    ("badVR.dcm", "DICOM image without a usable size (invalid literal for int()"),
])
def test_files_that_are_not_usable_images_are_refused_by_name(name, cause):
    with pytest.raises(InputError) as refused:
        plan_images([DATA / name])
    assert str(refused.value).startswith(f"{DATA / name}: {cause}")


def test_damaged_pixel_data_is_refused_when_read():
    plan = plan_images([DATA / "MR_truncated.dcm"])  # the header alone is fine
    with pytest.raises(InputError) as refused:
        list(planned_slices(plan))
    assert str(refused.value).startswith(
        f"{DATA / 'MR_truncated.dcm'}: pixel data cannot be decoded (transfer syntax "
        "Explicit VR Little Endian: The number of bytes of pixel data is less than expected")


def test_arrays_that_are_not_images_are_refused(tmp_path):
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 5)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(InputError, match=r"four\.npy: array has shape \(2, 3, 4, 5\): an "
                                         r"image is 2-D \(rows, columns\), a volume 3-D"):
        plan_images([tmp_path / "four.npy"])
    with pytest.raises(InputError, match=r"text\.npy: array holds <U1, not numbers"):
        plan_images([tmp_path / "text.npy"])
    with pytest.raises(InputError, match=r"empty\.npz: the \.npz archive holds no arrays"):
        plan_images([tmp_path / "empty.npz"])
    with pytest.raises(InputError, match=r"absent: file or directory not found"):
        plan_images([tmp_path / "absent"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("no images")
    with pytest.raises(InputError, match=r"notes: no DICOM images or NumPy arrays found"):
        plan_images([tmp_path / "notes"])
    with pytest.raises(InputError, match=r"shape must be \(rows, columns\) of at least 1"):
        plan_images([tmp_path / "four.npy"], shape=(0, 4))
