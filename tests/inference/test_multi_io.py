"""A model with several named inputs (float, bool, int64) and outputs of every rank: card
derivation with feature names, scoring from DataFrames and Arrow batches, and refusals."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pytest
from model_builders import multi_model, sequence_model, vector_model

from workbench.inference.card import (
    CardError,
    CardMismatch,
    FeatureMismatch,
    ModelCard,
    derive_card,
    embed_card,
)
from workbench.inference.model import Model

FEATURES = ["glucose", "insulin", "bmi", "smoker", "visits"]


@pytest.fixture(scope="module")
def plain_bytes() -> bytes:
    return multi_model()


@pytest.fixture(scope="module")
def model(plain_bytes) -> Model:
    card = derive_card(plain_bytes, FEATURES, name="multi", task="tests")
    return Model(embed_card(plain_bytes, card), name="multi")


@pytest.fixture
def visits() -> pd.DataFrame:
    return pd.DataFrame({
        "glucose": [5.1, 7.9, 6.2, 4.8],
        "insulin": np.array([10, 40, 22, 8], dtype=np.int64),
        "bmi": pd.array([22.5, None, 31.0, 27.4], dtype="Float64"),
        "smoker": [True, False, False, True],
        "visits": np.array([1, 3, 0, 12], dtype=np.int32),
        "note": ["a", "b", "c", "d"]}, index=[10, 11, 12, 13])


def test_features_are_shared_out_by_width(model):
    by_name = {i.name: i for i in model.card.inputs}
    assert by_name["x"].columns == ("glucose", "insulin", "bmi")
    assert (by_name["flag"].columns, by_name["flag"].dtype) == (("smoker",), "bool")
    assert (by_name["count"].columns, by_name["count"].dtype) == (("visits",), "int64")
    assert model.output_columns == ["total", "scaled_0", "scaled_1", "scaled_2", "flag_out",
                                    "count_plus", "column_view"]
    assert model.card.about["task"] == "tests"
    assert model.card.about["producer"] == "workbench-tests"


def test_every_output_shape_matches_plain_onnxruntime(model, plain_bytes, visits):
    scores = model.predict(visits, progress=False)
    session = ort.InferenceSession(plain_bytes, providers=["CPUExecutionProvider"])
    x = visits[["glucose", "insulin", "bmi"]].to_numpy(np.float32, na_value=np.nan)
    total, scaled, flag_out, count_plus, column_view = session.run(None, {
        "x": x, "flag": visits[["smoker"]].to_numpy(bool),
        "count": visits[["visits"]].to_numpy(np.int64)})
    assert scores.index.equals(visits.index)
    np.testing.assert_array_equal(scores["total"], total)
    assert np.isnan(scores["total"].iloc[1])  # the missing bmi arrives as NaN
    np.testing.assert_array_equal(scores[["scaled_0", "scaled_1", "scaled_2"]], scaled)
    assert scores["flag_out"].dtype == bool and scores["flag_out"].tolist() == \
        flag_out[:, 0].tolist()
    assert scores["count_plus"].dtype == np.int64 and scores["count_plus"].tolist() == \
        count_plus[:, 0].tolist()
    np.testing.assert_array_equal(np.stack(scores["column_view"]), column_view)


def test_arrow_batches_score_the_same(model, visits):
    table = pa.Table.from_pandas(visits, preserve_index=False)
    scored = model.predict(table.to_batches(max_chunksize=3), batch_rows=2, progress=False)
    expected = model.predict(visits, progress=False).reset_index(drop=True)
    pd.testing.assert_frame_equal(scored.drop(columns="column_view"),
                                  expected.drop(columns="column_view"))
    assert model.predict(table, progress=False)["count_plus"].tolist() == [2, 4, 1, 13]


def test_wrong_types_and_missing_columns_are_named_per_input(model, visits):
    wrong = visits.drop(columns="glucose").assign(smoker=[1, 0, 0, 1],
                                                  visits=[1.0, 3.0, 0.0, 12.0])
    with pytest.raises(FeatureMismatch) as refused:
        model.predict(wrong, progress=False)
    assert str(refused.value) == (
        "model 'multi' cannot score this DataFrame: missing column(s) glucose (input 'x'); "
        "wrong type smoker (int64; input 'flag' takes booleans as bool), visits (float64; "
        "input 'count' takes integers as int64)")


def test_missing_values_where_the_input_cannot_hold_them(model, visits):
    table = pa.Table.from_pandas(visits.assign(smoker=pd.array([True, None, False, True],
                                                                dtype="boolean")))
    with pytest.raises(FeatureMismatch) as refused:
        model.predict(table, progress=False)
    assert str(refused.value) == (
        "model 'multi' cannot score batch 0: missing values in smoker (input 'flag' takes "
        "bool, which has no missing value)")


def test_deriving_needs_the_names_of_a_wide_input(plain_bytes):
    with pytest.raises(CardError) as unnamed:
        derive_card(plain_bytes, name="multi", source="multi.onnx")
    assert str(unnamed.value) == (
        "multi.onnx: cannot derive a card: input 'x' takes 3 columns: name them (--features, "
        "or the model's 'feature_names' metadata)")
    with pytest.raises(CardError) as short:
        derive_card(plain_bytes, ["a", "b"], name="multi", source="multi.onnx")
    assert str(short.value) == (
        "multi.onnx: cannot derive a card: --features name(s) 2 column(s), the model's column "
        "inputs take 5 (x [N, 3], flag [N, 1], count [N, 1])")


def test_feature_names_from_the_converters_metadata(plain_bytes):
    import onnx

    model = onnx.load_from_string(plain_bytes)
    onnx.helper.set_model_props(model, {"feature_names": "g,i,b,s,v"})
    card = derive_card(model.SerializeToString(), name="multi")
    assert card.features == ("g", "i", "b", "s", "v")


def test_card_and_graph_disagreements_are_named_together(plain_bytes):
    card = derive_card(plain_bytes, FEATURES, name="multi").to_json()
    card["inputs"][0]["dtype"] = "float64"
    card["inputs"][0]["columns"] = ["glucose", "insulin"]
    del card["inputs"][0]["shape"]
    card["inputs"][1]["name"] = "smoker"
    card["outputs"][1]["columns"] = ["a", "b"]
    card["outputs"][4] = {"name": "column_view", "columns": ["v"]}
    card["outputs"].append({"name": "risk"})
    with pytest.raises(CardMismatch) as refused:
        Model(embed_card(plain_bytes, card), name="multi", source="multi.onnx")
    assert str(refused.value) == (
        "multi.onnx: the card and the model's graph disagree: "
        "input 'x': the card says float64, the graph takes float32; "
        "input 'x': the card lists 2 column(s), the graph takes 3; "
        "the card's input 'smoker' is not a graph input (graph inputs: x, flag, count); "
        "the graph's input 'flag' is not fed by the card; "
        "output 'scaled': the card lists 2 column(s), the graph gives 3; "
        "output 'column_view': columns take 1-D or 2-D outputs, the graph gives [N, 3, 1] "
        "(return it as an array); "
        "the card's output 'risk' is not a graph output (graph outputs: total, scaled, "
        "flag_out, count_plus, column_view)")


def test_a_hand_written_card_is_completed_from_the_graph(plain_bytes):
    card = {"format": "workbench-card/2", "name": "multi", "description": "hand-written",
            "inputs": [{"name": "x", "columns": ["a", "b", "c"]},
                       {"name": "flag", "columns": ["smoker"]},
                       {"name": "count", "columns": ["visits"]}],
            "outputs": [{"name": "scaled", "columns": ["a2", "b2", "c2"]},
                        {"name": "column_view"}]}
    model = Model(plain_bytes, name="multi", card=ModelCard.from_json(card, source="card.json"))
    by_name = {i.name: i for i in model.card.inputs}
    assert (by_name["x"].dtype, by_name["x"].shape) == ("float32", (None, 3))
    assert model.output_columns == ["a2", "b2", "c2", "column_view"]
    assert model.card.outputs[1].array == "column_view"
    assert model.card.about == {"description": "hand-written"}


@pytest.mark.parametrize(("document", "reason"), [
    ({"format": "workbench-card/3", "name": "m"},
     "unknown card format 'workbench-card/3' (expected 'workbench-card/2')"),
    ({"format": "workbench-card/2", "name": "m", "inputs": [{"name": "x"}],
      "outputs": [{"name": "y", "columns": ["a"], "array": "y"}]},
     "input 'x' needs either columns or an array; output 'y' takes columns or an array, "
     "not both"),
    ({"format": "workbench-card/2", "name": "m",
      "inputs": [{"name": "x", "dtype": "complex", "shape": [None, 2], "columns": ["a"]}],
      "outputs": [{"name": "y"}, {"name": "y"}]},
     "input 'x': unknown dtype 'complex'; input 'x': shape takes 2 columns, 1 listed; "
     "output name(s) listed twice: y"),
])
def test_a_malformed_card_names_each_problem(document, reason):
    with pytest.raises(CardError) as refused:
        ModelCard.from_json(document, source="card.json")
    assert str(refused.value) == f"card.json: model card is not usable ({reason})"


def test_one_dimensional_inputs_and_string_outputs():
    plain = vector_model()
    model = Model(embed_card(plain, derive_card(plain, name="vector")), name="vector")
    assert [i.columns for i in model.card.inputs] == [("age",), ("ward",)]
    frame = pd.DataFrame({"ward": ["A7", "B2", "A7"], "age": [30, 41, 55]})
    scores = model.predict(frame, batch_rows=2, progress=False)
    assert scores["doubled"].tolist() == [60.0, 82.0, 110.0]
    assert scores["ward_out"].tolist() == ["A7", "B2", "A7"]
    empty = model.predict(frame.head(0), progress=False)
    assert list(empty.columns) == ["doubled", "ward_out"] and len(empty) == 0


def test_inputs_and_outputs_without_a_place_in_a_table_are_refused():
    plain = sequence_model()
    with pytest.raises(CardError) as derived:
        derive_card(plain, ["a", "b"], name="seq", source="seq.onnx")
    assert str(derived.value) == (
        "seq.onnx: cannot derive a card: input 'scale' is a scalar, not one value per row; "
        "output 'parts' is seq(tensor(float)), which workbench cannot return as columns or "
        "arrays")
    card = {"format": "workbench-card/2", "name": "seq",
            "inputs": [{"name": "x", "columns": ["a", "b"]},
                       {"name": "scale", "columns": ["s"]}],
            "outputs": [{"name": "parts"}]}
    with pytest.raises(CardMismatch) as loaded:
        Model(embed_card(plain, card), name="seq", source="seq.onnx")
    assert str(loaded.value) == (
        "seq.onnx: the card and the model's graph disagree: input 'scale': the graph takes a "
        "scalar, not one value per row; output 'parts': the graph gives seq(tensor(float)), "
        "which workbench cannot return as columns or arrays")
