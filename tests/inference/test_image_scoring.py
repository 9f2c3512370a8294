"""An image model: a 4-D tensor input fed from an ArrayBatch, a column input from the batch's
row fields, a per-row array output; checked against plain onnxruntime on the same arrays."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from model_builders import image_model

from workbench.inference.arrays import ArrayBatch
from workbench.inference.card import FeatureMismatch, derive_card, embed_card
from workbench.inference.model import Model

SIZE = 16


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    plain = image_model(SIZE)
    return embed_card(plain, derive_card(plain, name="slice-model"))


@pytest.fixture(scope="module")
def model(model_bytes) -> Model:
    return Model(model_bytes, name="slice-model")


def slices(rows: int, seed: int = 1) -> ArrayBatch:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4096, (rows, 1, SIZE, SIZE)).astype(np.uint16)  # CT-like values
    frame = pd.DataFrame({"image_id": [f"img-{i:03d}" for i in range(rows)],
                          "modality": ["CT" if i % 2 else "MR" for i in range(rows)],
                          "age": rng.integers(20, 90, rows).astype(np.int64)})
    return ArrayBatch({"pixels": pixels}, frame)


def plain(model_bytes: bytes, batch: ArrayBatch) -> list[np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(["probabilities", "mask"], {
        "pixels": batch.arrays["pixels"].astype(np.float32),
        "age": batch.frame[["age"]].to_numpy(np.float32)})


def test_the_derived_card_feeds_the_image_from_an_array(model):
    spec = {i.name: i for i in model.card.inputs}
    assert spec["pixels"].array == "pixels" and spec["pixels"].shape == (None, 1, SIZE, SIZE)
    assert spec["age"].columns == ("age",)
    assert model.features == ["age"] and model.arrays == ["pixels"]
    assert model.output_columns == ["probabilities_0", "probabilities_1", "mask"]


def test_an_array_batch_scores_like_plain_onnxruntime(model, model_bytes):
    batch = slices(10)
    scores = model.predict(batch, progress=False)
    probabilities, mask = plain(model_bytes, batch)
    # Row fields first, then the outputs; the per-row mask is an array per cell.
    assert list(scores.columns) == ["image_id", "modality", "age", "probabilities_0",
                                    "probabilities_1", "mask"]
    assert scores["image_id"].tolist() == batch.frame["image_id"].tolist()
    np.testing.assert_array_equal(scores[["probabilities_0", "probabilities_1"]].to_numpy(),
                                  probabilities)
    assert scores["mask"].iloc[3].shape == (1, SIZE, SIZE)
    np.testing.assert_array_equal(np.stack(scores["mask"].to_list()), mask)


def test_a_stream_of_batches_scores_the_same(model):
    whole = model.predict(slices(25), progress=False)
    parts = [slices(25).arrays["pixels"][i:i + 7] for i in range(0, 25, 7)]
    frames = [slices(25).frame.iloc[i:i + 7] for i in range(0, 25, 7)]
    stream = (ArrayBatch({"pixels": p}, f) for p, f in zip(parts, frames, strict=True))
    scored = model.predict(stream, batch_rows=3, progress=False)
    assert list(scored.columns) == list(whole.columns)
    np.testing.assert_array_equal(scored["probabilities_1"], whole["probabilities_1"])
    np.testing.assert_array_equal(np.stack(scored["mask"]), np.stack(whole["mask"]))
    assert scored["image_id"].tolist() == whole["image_id"].tolist()
    batches = list(model.predict_batches(
        [ArrayBatch({"pixels": p}, f) for p, f in zip(parts, frames, strict=True)],
        progress=False))
    assert [len(b) for b in batches] == [7, 7, 7, 4]
    assert batches[3].index[0] == 21 and batches[3]["image_id"].iloc[0] == "img-021"


def test_a_fixed_batch_size_is_scored_in_padded_calls(model):
    # Exported with batch size 4: 10 rows go as 4 + 4 + 2 (padded to 4, cut back to 2).
    fixed = image_model(SIZE, batch=4)
    fixed_model = Model(embed_card(fixed, derive_card(fixed, name="fixed")), name="fixed")
    batch = slices(10)
    np.testing.assert_allclose(
        fixed_model.predict(batch, progress=False)["probabilities_0"],
        model.predict(batch, progress=False)["probabilities_0"], rtol=1e-6)


def test_empty_batches_give_empty_outputs(model):
    empty = model.predict([], progress=False)
    assert list(empty.columns) == model.output_columns and len(empty) == 0


def test_every_input_the_data_cannot_feed_is_named(model):
    small = slices(3)
    wrong = ArrayBatch({"pixels": small.arrays["pixels"][:, :, :8, :8].astype(np.complex64)},
                       small.frame.assign(age=small.frame["age"].astype(str)))
    with pytest.raises(FeatureMismatch) as refused:
        model.predict(wrong, progress=False)
    assert str(refused.value) == (
        "model 'slice-model' cannot score this ArrayBatch: wrong type array pixels (complex64; "
        "input 'pixels' takes numbers as float32), age (str; input 'age' takes numbers as "
        "float32); wrong shape array pixels ([N, 1, 8, 8]; input 'pixels' takes "
        "[N, 1, 16, 16])")


def test_a_missing_array_and_a_missing_field_are_named(model):
    renamed = ArrayBatch({"image": slices(2).arrays["pixels"]})
    with pytest.raises(FeatureMismatch) as refused:
        model.predict([renamed], progress=False)
    assert str(refused.value) == (
        "model 'slice-model' cannot score batch 0: missing column(s) age (input 'age'); "
        "no array 'pixels' for input 'pixels' (the batch holds: image)")
    with pytest.raises(FeatureMismatch) as table:
        model.predict(pd.DataFrame({"age": [50.0]}), progress=False)
    assert str(table.value) == (
        "model 'slice-model' cannot score this DataFrame: input 'pixels' takes array "
        "'pixels', and this DataFrame holds table columns only (score an ArrayBatch)")


def test_row_fields_may_not_shadow_outputs(model):
    batch = slices(2)
    clash = ArrayBatch(batch.arrays, batch.frame.assign(mask="x"))
    with pytest.raises(FeatureMismatch, match=r"row field\(s\) mask have the name of an output "
                                              r"column \(rename them\)$"):
        model.predict(clash, progress=False)
