"""Sealed image sets: which key opens what, refusals with their reasons, bounded scans."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.demo.imaging import SHAPE, ct_files
from workbench.errors import InputError, WorkbenchError
from workbench.sealing import images as image_format
from workbench.sealing.images import (
    default_batch_rows,
    image_set_info,
    open_images,
    scan_images,
    seal_images,
)
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
from workbench.sealing.table import seal_table

CLINICAL, PHI = table_key("ct", CLINICAL_ROLE), table_key("ct", PHI_ROLE)


class Recording:
    """A key source that remembers which keys were asked for."""

    def __init__(self, ring: Keyring, only: tuple[str, ...] | None = None) -> None:
        self.asked: list[str] = []
        self._keys = MemoryKeySource({r: ring.get_key(r) for r in (only or (CLINICAL, PHI))})

    def get_key(self, resource: str) -> bytes:
        self.asked.append(resource)
        return self._keys.get_key(resource)


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    base = tmp_path_factory.mktemp("images")
    ring = Keyring.create(base / "owner.keyring")
    done = seal_images(ct_files(), base / "ct.sealed.parquet", keyring=ring, dataset="ct",
                       shape=SHAPE)
    return done, ring


def _damaged(path: Path, tmp_path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    out = tmp_path / "damaged.sealed.parquet"
    out.write_bytes(bytes(data))
    return out


def test_sealing_reports_the_set(sealed):
    done, _ring = sealed
    assert (done.rows, done.shape, done.volumes, done.resampled) == (3, SHAPE, 3, True)
    assert done.path.read_bytes()[:4] == b"PARE"


def test_pixels_and_fields_need_only_the_clinical_key(sealed):
    done, ring = sealed
    keys = Recording(ring, only=(CLINICAL,))
    pixels, frame = open_images(done.path, keys)
    assert set(keys.asked) == {CLINICAL}
    assert pixels.shape == (3, 1, *SHAPE) and pixels.dtype == np.float32
    assert list(frame["modality"]) == ["CT"] * 3 and list(frame["units"]) == ["HU"] * 3
    assert list(frame["original_height"]) == [128, 512, 512]
    assert not set(frame.columns) & {"patient_name", "patient_id", "source"}
    # Air is air in every slice: Hounsfield units survived sealing and resampling.
    assert (pixels.reshape(3, -1).min(axis=1) < -800).all()


def test_identifiers_need_the_phi_key_and_are_refused_without_it(sealed):
    done, ring = sealed
    with pytest.raises(WorkbenchError) as refused:
        open_images(done.path, Recording(ring, only=(CLINICAL,)), columns=["patient_name"])
    assert str(refused.value) == (f"{done.path}: key '{PHI}' is not available: not held by "
                                  "this key source")
    keys = Recording(ring)
    _pixels, frame = open_images(done.path, keys, columns=["image", "patient_name", "source"])
    assert PHI in keys.asked
    assert list(frame["patient_name"]) == ["CompressedSamples^CT1", "CQ500-CT-310",
                                           "JXD191021006"]
    assert list(frame["source"]) == [p.name for p in ct_files()]


def test_nothing_identifying_or_pixel_is_in_the_clear(sealed):
    done, ring = sealed
    data = done.path.read_bytes()
    for text in (b"CompressedSamples", b"CQ500", b"JXD191021006", b"CT_small", b"MONOCHROME2"):
        assert text not in data
    pixels, _frame = open_images(done.path, MemoryKeySource(
        {r: ring.get_key(r) for r in (CLINICAL, PHI)}))
    assert pixels[0, 0, 100, 64:80].tobytes() not in data


def test_the_footer_describes_the_set(sealed):
    done, ring = sealed
    info = image_set_info(done.path, ring)
    assert (info.rows, info.shape) == (3, SHAPE)
    assert "patient_birth_date" in info.phi_columns and "spacing_row_mm" in info.fields
    assert "pixels" not in info.columns
    # A scan's default batch holds about 32 MB of pixels: 128 slices of 256x256 float32.
    assert default_batch_rows(info.shape) == 128


def test_a_wrong_key_is_refused(sealed):
    done, _ring = sealed
    wrong = MemoryKeySource({CLINICAL: os.urandom(32), PHI: os.urandom(32)})
    with pytest.raises(WorkbenchError) as refused:
        image_set_info(done.path, wrong)
    assert str(refused.value) == (f"{done.path}: key '{CLINICAL}' does not open this data "
                                  "(wrong key)")


def test_a_tampered_pixel_page_is_refused(sealed, tmp_path):
    done, ring = sealed
    damaged = _damaged(done.path, tmp_path, done.path.stat().st_size // 2)
    with pytest.raises(WorkbenchError) as refused:
        open_images(damaged, ring)
    assert str(refused.value) == (f"{damaged}: table is damaged or was tampered with "
                                  "(authentication failed)")


def test_tampered_key_metadata_and_truncation_are_refused(sealed, tmp_path):
    done, ring = sealed
    data = done.path.read_bytes()
    at = data.rindex(b'"kmsInstanceID"') + 2
    damaged = _damaged(done.path, tmp_path, at)
    with pytest.raises(WorkbenchError, match=r"damaged or was tampered with \(key metadata\)"):
        image_set_info(damaged, ring)
    truncated = tmp_path / "truncated.sealed.parquet"
    truncated.write_bytes(data[: len(data) - 100])
    with pytest.raises(WorkbenchError, match=r"truncated\.sealed\.parquet: table is truncated"):
        image_set_info(truncated, ring)


def test_a_sealed_table_is_not_an_image_set(tmp_path):
    ring = Keyring.create(tmp_path / "owner.keyring")
    plain = tmp_path / "t.parquet"
    pq.write_table(pa.table({"name": ["a"], "x": [1.0]}), plain)
    table = seal_table(plain, tmp_path / "t.sealed.parquet", protect=["name"], keyring=ring,
                       dataset="t")
    with pytest.raises(WorkbenchError) as refused:
        image_set_info(table, ring)
    assert str(refused.value) == (f"{table}: is a sealed table, not a sealed image set (no "
                                  "'workbench.images' metadata)")


def test_unknown_columns_are_named_with_what_there_is(sealed):
    done, ring = sealed
    with pytest.raises(WorkbenchError) as refused:
        open_images(done.path, ring, columns=["modality", "diagnosis", "pixels"])
    message = str(refused.value)
    assert message.startswith("ct.sealed.parquet has no column(s) diagnosis, pixels (the "
                              "pixels are always read, as the batch's array) (fields: image, "
                              "volume, slice,")
    assert "identifiers: source, patient_name," in message


def test_a_refused_seal_leaves_nothing_behind(tmp_path):
    ring = Keyring.create(tmp_path / "owner.keyring")
    before = (tmp_path / "owner.keyring").read_bytes()
    out = tmp_path / "mixed.sealed.parquet"
    with pytest.raises(InputError, match="image is 512x512, but the set's images are 128x128"):
        seal_images(ct_files(), out, keyring=ring, dataset="mixed")
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["owner.keyring"]
    assert (tmp_path / "owner.keyring").read_bytes() == before


ROWS, SIZE = 3000, 64


@pytest.fixture(scope="module")
def big(tmp_path_factory, sealed):
    base = tmp_path_factory.mktemp("big")
    volume = np.random.default_rng(3).normal(0, 200, (ROWS, SIZE, SIZE)).astype(np.float32)
    np.save(base / "volume.npy", volume)
    ring = Keyring.create(base / "owner.keyring")
    old = image_format.ROW_GROUP_BYTES
    image_format.ROW_GROUP_BYTES = 100 * SIZE * SIZE * 4  # 100 images per row group
    try:
        done = seal_images([base / "volume.npy"], base / "big.sealed.parquet", keyring=ring,
                           dataset="big")
    finally:
        image_format.ROW_GROUP_BYTES = old
    return done, ring, volume


def test_a_scan_holds_one_row_group_not_the_set(big):
    done, ring, volume = big
    assert pq.ParquetFile(done.path, decryption_properties=_props(ring)).num_row_groups == 30
    whole = volume.nbytes
    start, peak, rows = pa.total_allocated_bytes(), 0, 0
    for pixels, frame in scan_images(done.path, ring, batch_rows=100, columns=["slice"]):
        np.testing.assert_array_equal(pixels[:, 0], volume[rows:rows + len(pixels)])
        assert list(frame["slice"]) == list(range(rows, rows + len(pixels)))
        rows += len(pixels)
        peak = max(peak, pa.total_allocated_bytes() - start)
    assert rows == ROWS
    assert peak < whole / 6, (peak, whole)


def _props(ring):
    from workbench.sealing import kms

    return kms.decryption_properties(ring)


def test_the_format_is_documented_with_its_descriptor(big):
    done, ring, _volume = big
    schema = pq.ParquetFile(done.path, decryption_properties=_props(ring)).schema_arrow
    descriptor = json.loads(schema.metadata[b"workbench.images"])
    assert descriptor == {"format": "workbench-images/1", "shape": [SIZE, SIZE],
                          "pixel_column": "pixels", "pixel_dtype": "<f4",
                          "phi_columns": list(image_format.PHI_COLUMNS), "resampled": False}
    assert schema.field("pixels").type == pa.binary(SIZE * SIZE * 4)
