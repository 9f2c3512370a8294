"""wb.open_images / wb.scan_images in a real Confidential Python kernel, keys from a real
broker: only the keys asked for leave it, and each wrong request is one clear error."""

from __future__ import annotations

import json

import pytest

from workbench.demo.environment import SEALED_COHORT
from workbench.demo.imaging import IMAGE_SET, SHAPE
from workbench.kernel.catalog import CATALOG_NAME

CLINICAL, PHI = f"{IMAGE_SET}/table-key/clinical", f"{IMAGE_SET}/table-key/phi"


def _released(site) -> list[str]:
    with site.admin() as admin:
        return [r["payload"]["resource"] for r in admin.audit(kind="release", limit=1000)]


@pytest.fixture(autouse=True)
def _forget(imaging_kernel):
    outcome = imaging_kernel.execute("import workbench as wb\nwb.forget()")
    assert outcome.error is None, outcome.evalue


def test_the_catalog_lists_the_image_set_with_its_keys(imaging_kernel):
    outcome = imaging_kernel.execute("wb.catalog()")
    html = outcome.data("text/html")
    assert IMAGE_SET in html and CLINICAL in html and PHI in html and "ct-tissue" in html


def test_open_images_releases_only_the_clinical_key(imaging_kernel, imaging_site):
    before = _released(imaging_site)
    outcome = imaging_kernel.execute(
        f"batch = wb.open_images({IMAGE_SET!r}, approve=True)\n"
        "pixels = batch.arrays['pixels']\n"
        "print(type(batch).__name__, pixels.shape, pixels.dtype, batch.rows)\n"
        "print(sorted(batch.frame.columns))\n"
        "print(list(batch.frame['modality']), list(batch.frame['units']))\n"
        "print(round(float(pixels.min())), [r['resource'] for r in wb.status()['released']])")
    assert outcome.error is None, outcome.evalue
    lines = outcome.stdout.splitlines()
    assert lines[0] == f"ArrayBatch (3, 1, {SHAPE[0]}, {SHAPE[1]}) float32 3"
    columns = eval(lines[1])  # noqa: S307 (a list literal printed by the kernel)
    assert "spacing_row_mm" in columns and "volume" in columns
    assert not {"patient_name", "patient_id", "source", "pixels"} & set(columns)
    assert lines[2] == "['CT', 'CT', 'CT'] ['HU', 'HU', 'HU']"
    air, released = lines[3].split(" ", 1)
    assert int(air) < -800 and released == f"['{CLINICAL}']"
    assert _released(imaging_site)[len(before):] == [CLINICAL]


def test_scan_images_yields_bounded_array_batches(imaging_kernel):
    outcome = imaging_kernel.execute(
        f"scan = wb.scan_images({IMAGE_SET!r}, batch_rows=2, columns=['image', 'volume'], "
        "approve=True)\n"
        "print(repr(scan), len(scan))\n"
        "print([(b.arrays['pixels'].shape[0], list(b.frame['image'])) for b in scan])")
    assert outcome.error is None, outcome.evalue
    first, second = outcome.stdout.splitlines()
    assert first == (f"<ImageScan '{IMAGE_SET}': 3 images of {SHAPE[0]}x{SHAPE[1]} in batches "
                     "of 2> 3")
    assert second == "[(2, [0, 1]), (1, [2])]"


def test_identifiers_are_read_only_when_named_and_need_the_phi_key(imaging_kernel,
                                                                   imaging_site):
    before = _released(imaging_site)
    outcome = imaging_kernel.execute(
        f"who = wb.open_images({IMAGE_SET!r}, columns=['image', 'patient_name', 'source'], "
        "approve=True)\n"
        "print(list(who.frame['patient_name']))\n"
        "print(sorted(r['resource'] for r in wb.status()['released']))")
    assert outcome.error is None, outcome.evalue
    names, released = outcome.stdout.splitlines()
    assert names == "['CompressedSamples^CT1', 'CQ500-CT-310', 'JXD191021006']"
    assert released == str(sorted([CLINICAL, PHI]))
    assert sorted(_released(imaging_site)[len(before):]) == sorted([CLINICAL, PHI])


def test_a_release_without_approval_says_how(imaging_kernel):
    outcome = imaging_kernel.execute(f"wb.open_images({IMAGE_SET!r})")
    assert outcome.ename == "ApprovalRequired"
    assert CLINICAL in outcome.evalue
    assert "pass approve=True or set WORKBENCH_AUTO_APPROVE=1" in outcome.evalue


def test_wrong_names_and_columns_are_one_clear_error(imaging_kernel, imaging_site):
    outcome = imaging_kernel.execute("wb.open_images('mri-slices', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert outcome.evalue == (f"no images named 'mri-slices' in "
                              f"{imaging_site.data_dir / CATALOG_NAME} (available: {IMAGE_SET})")
    outcome = imaging_kernel.execute(
        f"wb.scan_images({IMAGE_SET!r}, columns=['diagnosis'], approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert outcome.evalue.startswith(f"image set '{IMAGE_SET}' has no column(s) diagnosis "
                                     "(fields: image, volume, slice,")
    outcome = imaging_kernel.execute(f"wb.scan_images({IMAGE_SET!r}, batch_rows=0)")
    assert outcome.evalue == "batch_rows must be at least 1"


def test_a_file_swapped_for_another_datasets_is_named_as_such(imaging_kernel, imaging_site):
    catalog = imaging_site.data_dir / CATALOG_NAME
    document = json.loads(catalog.read_text())
    document["images"]["swapped"] = {"path": SEALED_COHORT, "description": "not images"}
    catalog.write_text(json.dumps(document))
    outcome = imaging_kernel.execute("wb.open_images('swapped', approve=True)")
    assert outcome.ename == "WorkbenchError"
    assert "key 'cohort/table-key/clinical' is not available: the file asks for it, but " \
           "images 'swapped' is sealed under swapped/table-key/clinical and " \
           "swapped/table-key/phi: cohort.sealed.parquet is not the file the catalog says " \
           "(swapped or mislabelled)" in outcome.evalue
