"""The imaging walkthrough's model: its graph, its card, and what it measures."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from workbench.demo import imaging
from workbench.errors import WorkbenchError
from workbench.inference.card import CARD_METADATA_KEY
from workbench.sealing.dicom import read_header, read_slices


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return imaging.model_with_card()


@pytest.fixture(scope="module")
def session(model_bytes):
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def _run(session, images: np.ndarray, spacing: np.ndarray) -> dict[str, np.ndarray]:
    names = ["area_cm2", "fractions", "mask"]
    return dict(zip(names, session.run(names, {"image": images.astype(np.float32),
                                               "spacing": spacing.astype(np.float32)}),
                    strict=True))


def test_the_card_travels_inside_the_model_and_matches_the_graph(model_bytes):
    model = onnx.load_from_string(model_bytes)
    card = json.loads({p.key: p.value for p in model.metadata_props}[CARD_METADATA_KEY])
    assert card["format"] == "workbench-card/2" and card["name"] == imaging.MODEL
    graph_inputs = {i.name: i for i in model.graph.input}
    assert [i["name"] for i in card["inputs"]] == list(graph_inputs) == ["image", "spacing"]
    assert card["inputs"][0]["array"] == "pixels"
    assert card["inputs"][1]["columns"] == ["spacing_row_mm", "spacing_col_mm"]
    assert [o["name"] for o in card["outputs"]] == [o.name for o in model.graph.output]
    assert card["outputs"][2] == {"name": "mask", "dtype": "float32",
                                  "shape": [None, 4, None, None], "array": "mask"}


def test_a_disc_of_water_in_air_has_its_area_in_square_centimetres(session):
    size, radius_px, spacing_mm = 200, 60, 0.5
    y, x = np.mgrid[:size, :size]
    disc = (x - 100) ** 2 + (y - 100) ** 2 < radius_px ** 2
    image = np.where(disc, 40.0, -1000.0)[None, None]  # soft tissue (40 HU) in air
    out = _run(session, image, np.array([[spacing_mm, spacing_mm]]))
    expected_cm2 = np.pi * (radius_px * spacing_mm / 10) ** 2
    body, fat, soft, bone = out["area_cm2"][0]
    # Smoothed, the outline's pixels mix air and tissue; below -190 HU they count as air,
    # so the body loses a rim under one pixel wide: 2 pi r x 1 pixel bounds the loss.
    rim_cm2 = 2 * np.pi * (radius_px * spacing_mm / 10) * (spacing_mm / 10)
    assert expected_cm2 - rim_cm2 < body < expected_cm2
    # On its way from air to tissue the rim passes through the fat window: a sliver.
    assert soft == pytest.approx(body, rel=0.03) and fat < 0.03 * body
    assert bone == pytest.approx(0, abs=1e-3)
    np.testing.assert_allclose(out["mask"].sum(axis=1), 1.0, atol=1e-5)
    assert out["fractions"][0].sum() == pytest.approx(1.0, abs=1e-5)


def test_each_window_labels_its_tissue(session):
    values = np.array([-1000.0, -100.0, 40.0, 700.0])  # air, fat, muscle, bone
    image = np.repeat(values, 16)[None, None, None, :].repeat(8, axis=2)
    mask = _run(session, image, np.ones((1, 2)))["mask"][0]
    centres = [8 + 16 * k for k in range(4)]
    assert [int(np.argmax(mask[:, 4, c])) for c in centres] == [0, 1, 2, 3]


def test_the_graph_agrees_with_its_numpy_reference_on_the_real_slices(model_bytes):
    for path in imaging.ct_files():
        [piece] = read_slices(read_header(path))
        spacing = np.array([[piece.fields["spacing_row_mm"], piece.fields["spacing_col_mm"]]])
        assert imaging.check_model(model_bytes, piece.pixels[None, None], spacing) < 1e-4


def test_a_graph_that_disagrees_with_the_reference_is_refused():
    model = onnx.load_from_string(imaging.build_model())
    for tensor in model.graph.initializer:
        if tensor.name == "edges":
            tensor.CopyFrom(onnx.numpy_helper.from_array(
                np.array([-190.0, -30.0, 400.0], np.float32).reshape(1, 3, 1, 1), "edges"))
    image = np.full((1, 1, 8, 8), 300.0)  # bone for the reference, soft tissue for this graph
    with pytest.raises(WorkbenchError, match="the ct-tissue graph disagrees with its numpy "
                                             "reference by"):
        imaging.check_model(model.SerializeToString(), image, np.ones((1, 2)))
