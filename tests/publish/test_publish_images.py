"""`workbench publish images`: real DICOM slices from pydicom's wheel, published as an image
set (identifying tags under the PHI key), re-published without change, and the refusals."""

from __future__ import annotations

import os
import shutil

import pytest
from publish_helpers import one_line_error
from pydicom.data import get_testdata_file

from workbench.errors import WorkbenchError
from workbench.sealing.images import open_images
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key

# A 128x128 CT slice and a 64x64 MR slice: two sizes, so a set of both needs --shape.
SLICES = ("CT_small.dcm", "MR_small.dcm")


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    for name in SLICES:
        shutil.copy(get_testdata_file(name, download=False), folder / name)
    return folder


def fresh() -> str:
    return f"scans-{os.urandom(3).hex()}"


def test_images_are_published_and_publishing_them_again_changes_nothing(owner, scans):
    name = fresh()
    first = owner.publish("images", scans, name, "--shape", "64x64", "--policy",
                          str(owner.policy_file()), "--description", "two slices")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == (f"published images '{name}' as "
                                            f"{owner.data_dir / (name + '.sealed.parquet')}")
    entry = owner.catalog()["images"][name]
    assert entry == {"path": f"{name}.sealed.parquet", "description": "two slices"}
    clinical, phi = table_key(name, CLINICAL_ROLE), table_key(name, PHI_ROLE)
    assert {path: state[2] for path, state in owner.broker_state(name).items()} == {
        clinical: "active", phi: "active"}

    # The clinical key alone opens the pixels and the geometry, not who the patients are.
    keyring = Keyring.open(owner.keyring)
    only_clinical = MemoryKeySource({clinical: keyring.get_key(clinical)})
    pixels, frame = open_images(owner.data_dir / entry["path"], only_clinical)
    assert pixels.shape == (2, 1, 64, 64)
    assert sorted(frame["modality"]) == ["CT", "MR"]
    with pytest.raises(WorkbenchError, match=f"key '{phi}' is not available"):
        open_images(owner.data_dir / entry["path"], only_clinical, columns=["patient_name"])

    before = owner.snapshot(name)
    again = owner.publish("images", scans, name, "--shape", "64x64")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"images '{name}' is already published as "
        f"{owner.data_dir / (name + '.sealed.parquet')}: sealed file, keys, broker and "
        "catalog unchanged")
    assert owner.snapshot(name) == before


def test_images_of_two_sizes_without_shape_are_refused_and_nothing_is_written(owner, scans):
    name = fresh()
    before = owner.snapshot(name)
    catalog = owner.catalog()
    message = one_line_error(owner.publish("images", scans, name, "--policy",
                                           str(owner.policy_file())))
    assert message == (f"workbench: error: {scans / 'MR_small.dcm'}: image is 64x64, but the "
                       f"set's images are 128x128 (like {scans / 'CT_small.dcm'}): images of "
                       "one set share a shape; seal each shape as its own set, or resample "
                       "them all with shape=(rows, columns)")
    assert owner.snapshot(name) == before
    assert owner.catalog() == catalog


@pytest.mark.parametrize("shape", ["64", "0x64", "axb"])
def test_a_malformed_shape_is_refused_by_the_command_line(owner, scans, shape):
    result = owner.publish("images", scans, fresh(), "--shape", shape)
    assert result.returncode == 2
    assert "argument --shape:" in result.stderr
    assert ("rows and columns must be at least 1" if shape == "0x64"
            else "expected ROWSxCOLUMNS, e.g. 256x256") in result.stderr


def test_a_folder_without_images_is_refused(owner, tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    name = fresh()
    before = owner.snapshot(name)
    message = one_line_error(owner.publish("images", tmp_path, name, "--policy",
                                           str(owner.policy_file())))
    assert message == f"workbench: error: {tmp_path}: no DICOM images or NumPy arrays found"
    assert owner.snapshot(name) == before
