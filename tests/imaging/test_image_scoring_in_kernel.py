"""wb.load_model(...).predict(wb.scan_images(...)) in a real kernel: the CT tissue model
scores the sealed slices as the card says, and data it cannot feed is refused by name."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from workbench.demo.imaging import IMAGE_SET, MODEL, SEALED_IMAGES, model_with_card
from workbench.sealing.images import open_images
from workbench.sealing.keyring import Keyring


@pytest.fixture(autouse=True)
def _forget(imaging_kernel):
    outcome = imaging_kernel.execute("import workbench as wb\nwb.forget()")
    assert outcome.error is None, outcome.evalue


def _expected(site) -> dict[str, np.ndarray]:
    """What plain onnxruntime computes on the same slices, on the data owner's side."""
    ring = Keyring.open(site.workdir / "hospital.keyring")
    pixels, frame = open_images(site.data_dir / SEALED_IMAGES, ring)
    spacing = frame[["spacing_row_mm", "spacing_col_mm"]].to_numpy(np.float32)
    session = ort.InferenceSession(model_with_card(), providers=["CPUExecutionProvider"])
    area, fractions, mask = session.run(["area_cm2", "fractions", "mask"],
                                        {"image": pixels, "spacing": spacing})
    return {"area": area, "fractions": fractions, "mask": mask}


def test_the_model_scores_the_sealed_slices_batch_by_batch(imaging_kernel, imaging_site):
    outcome = imaging_kernel.execute(
        f"model = wb.load_model({MODEL!r}, approve=True)\n"
        f"scores = model.predict(wb.scan_images({IMAGE_SET!r}, batch_rows=2, approve=True), "
        "progress=False)\n"
        "import json\n"
        "print(json.dumps({'columns': list(scores.columns), "
        "'areas': scores[['body_cm2', 'fat_cm2', 'soft_tissue_cm2', 'bone_cm2']]"
        ".to_numpy().tolist(), 'fractions': scores[['fat_fraction', 'soft_tissue_fraction', "
        "'bone_fraction']].to_numpy().tolist(), 'mask_shape': list(scores['mask'].iloc[2].shape),"
        " 'mask_sum': float(scores['mask'].iloc[2].sum()), "
        "'released': sorted(r['resource'] for r in wb.status()['released'])}))")
    assert outcome.error is None, outcome.evalue
    got = json.loads(outcome.stdout.strip().splitlines()[-1])
    expected = _expected(imaging_site)
    # The rows' fields come first, then the outputs the card names.
    assert got["columns"][:3] == ["image", "volume", "slice"]
    assert got["columns"][-8:] == ["body_cm2", "fat_cm2", "soft_tissue_cm2", "bone_cm2",
                                   "fat_fraction", "soft_tissue_fraction", "bone_fraction",
                                   "mask"]
    np.testing.assert_allclose(got["areas"], expected["area"], rtol=1e-5)
    np.testing.assert_allclose(got["fractions"], expected["fractions"], rtol=1e-5)
    assert got["mask_shape"] == list(expected["mask"][2].shape)
    assert got["mask_sum"] == pytest.approx(float(expected["mask"][2].sum()), rel=1e-5)
    assert got["released"] == [f"{IMAGE_SET}/table-key/clinical", f"{MODEL}/file-keyset/main"]


def test_images_without_the_fields_the_card_reads_are_refused_by_input(imaging_kernel):
    outcome = imaging_kernel.execute(
        f"model = wb.load_model({MODEL!r}, approve=True)\n"
        f"model.predict(wb.open_images({IMAGE_SET!r}, columns=['image'], approve=True), "
        "progress=False)")
    assert outcome.ename == "FeatureMismatch"
    assert outcome.evalue == ("model 'ct-tissue' cannot score this ArrayBatch: missing "
                              "column(s) spacing_row_mm, spacing_col_mm (input 'spacing')")
