"""The demo's risk model (a format 1 card): batched prediction against plain onnxruntime,
its refusals, and opening it sealed."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest

from workbench.demo.assets import build_cohort
from workbench.errors import WorkbenchError
from workbench.inference.card import (
    CARD_METADATA_KEY,
    CardMismatch,
    FeatureMismatch,
    embed_card,
)
from workbench.inference.model import Model, load_sealed_model
from workbench.sealing.files import seal_file
from workbench.sealing.keyring import Keyring


@pytest.fixture(scope="module")
def model_bytes(demo_assets) -> bytes:
    return demo_assets.model.read_bytes()


@pytest.fixture(scope="module")
def model(model_bytes) -> Model:
    return Model(model_bytes, name="risk-model")


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    frame = build_cohort(3000, seed=3)
    frame.index = pd.RangeIndex(100, 3100)  # prediction must keep the caller's index
    return frame


def plain(model_bytes: bytes, frame: pd.DataFrame, features: list[str]) -> list[np.ndarray]:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {"features": frame[features].to_numpy(np.float32)})


def test_dataframe_scores_equal_plain_onnxruntime(model, model_bytes, cohort):
    scores = model.predict(cohort, batch_rows=700, progress=False)
    label, proba = plain(model_bytes, cohort, model.features)
    assert list(scores.columns) == ["label", "probability_benign", "probability_malignant"]
    assert scores.index.equals(cohort.index)
    np.testing.assert_array_equal(scores["label"].to_numpy(), label)
    np.testing.assert_array_equal(scores[["probability_benign", "probability_malignant"]]
                                  .to_numpy(), proba)


def test_batches_of_any_kind_score_the_same(model, cohort):
    whole = model.predict(cohort, progress=False).reset_index(drop=True)
    table = pa.Table.from_pandas(cohort, preserve_index=False)
    for data in (table.to_batches(max_chunksize=333), [table],
                 [cohort.iloc[:1000], cohort.iloc[1000:]], iter(table.to_batches(500))):
        scored = model.predict(data, batch_rows=256, progress=False)
        pd.testing.assert_frame_equal(scored, whole)
    pieces = list(model.predict_batches(table.to_batches(max_chunksize=1000), progress=False))
    assert [len(p) for p in pieces] == [1000, 1000, 1000]
    assert pieces[2].index[0] == 2000
    pd.testing.assert_frame_equal(pd.concat(pieces), whole)


def test_a_scan_with_a_row_count_fills_in_place(model, cohort):
    class Scan:
        num_rows = len(cohort)

        def __iter__(self):
            return iter(pa.Table.from_pandas(cohort, preserve_index=False).to_batches(400))

    scored = model.predict(Scan(), progress=False)
    pd.testing.assert_frame_equal(scored, model.predict(cohort, progress=False)
                                  .reset_index(drop=True))


def test_nullable_and_integer_columns_are_accepted(model, cohort):
    frame = cohort[model.features].head(50).copy()
    frame["mean_radius"] = frame["mean_radius"].astype("Float64")
    frame.loc[frame.index[0], "mean_radius"] = pd.NA
    frame["mean_texture"] = frame["mean_texture"].round().astype("int64")
    scores = model.predict(frame, progress=False)
    assert len(scores) == 50 and np.isfinite(scores["probability_malignant"].iloc[1:]).all()


def test_empty_input_gives_empty_outputs(model, cohort):
    assert list(model.predict(cohort.head(0), progress=False).columns) == model.output_columns
    assert len(model.predict([], progress=False)) == 0


def test_missing_and_mistyped_columns_are_named(model, cohort):
    frame = cohort.drop(columns=["mean_radius", "worst_area"])
    frame["mean_texture"] = frame["mean_texture"].astype(str)
    with pytest.raises(FeatureMismatch) as wrong:
        model.predict(frame)
    message = str(wrong.value)
    assert message == ("model 'risk-model' cannot score this DataFrame: missing column(s) "
                       "mean_radius, worst_area (input 'features'); wrong type mean_texture "
                       "(str; input 'features' takes numbers as float32)")
    batch = pa.record_batch({"mean_radius": pa.array(["1.0"])})
    with pytest.raises(FeatureMismatch, match=r"batch 0: missing column\(s\) mean_texture, .*"
                                              r"wrong type mean_radius \(string; input "
                                              r"'features' takes numbers as float32\)$"):
        model.predict([batch])


def test_batch_rows_must_be_positive(model, cohort):
    with pytest.raises(WorkbenchError, match="batch_rows must be at least 1"):
        model.predict(cohort, batch_rows=0)


def _card(model_bytes: bytes) -> dict:
    import onnx

    props = {p.key: p.value for p in onnx.load_from_string(model_bytes).metadata_props}
    return json.loads(props[CARD_METADATA_KEY])


def test_format_1_card_and_graph_must_agree(model_bytes):
    card = _card(model_bytes)
    prefix = "m: the card and the model's graph disagree: "
    with pytest.raises(CardMismatch) as narrow:
        Model(embed_card(model_bytes, {**card, "feature_columns": card["feature_columns"][1:]}),
              name="m")
    assert str(narrow.value) == (prefix + "input 'features': the card lists 29 column(s), "
                                 "the graph takes 30")
    with pytest.raises(CardMismatch) as renamed:
        Model(embed_card(model_bytes, {**card, "inputs": [{"name": "x"}],
                                       "outputs": [{"name": "risk"}]}), name="m")
    assert str(renamed.value) == (
        prefix + "the card's input 'x' is not a graph input (graph inputs: features); "
        "the graph's input 'features' is not fed by the card; the card's output 'risk' is not "
        "a graph output (graph outputs: label, probabilities)")


def test_a_model_without_a_card_is_refused(model_bytes):
    import onnx

    bare = onnx.load_from_string(model_bytes)
    del bare.metadata_props[:]
    with pytest.raises(WorkbenchError, match="the model carries no card"):
        Model(bare.SerializeToString(), name="bare")
    with pytest.raises(WorkbenchError, match="not a model onnxruntime can load"):
        Model(b"\x08\x07garbage", name="junk")


def test_embedding_a_card_replaces_the_old_one(model_bytes):
    card = _card(model_bytes)
    again = embed_card(embed_card(model_bytes, {**card, "task": "first"}), {**card, "task": "x"})
    assert _card(again)["task"] == "x"


def test_sealed_model_opens_only_under_its_name(demo_assets, tmp_path):
    ring = Keyring.create(tmp_path / "owner.keyring")
    sealed = seal_file(demo_assets.model, tmp_path / "m.sealed", name="risk-model", keyring=ring)
    opened = load_sealed_model(sealed, "risk-model", ring)
    assert opened.features[0] == "mean_radius" and "held-out AUC" in opened._repr_html_()
    with pytest.raises(WorkbenchError, match="was sealed as resource 'risk-model', not 'other'"):
        load_sealed_model(sealed, "other", ring)
