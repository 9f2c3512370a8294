"""Models of another shape than the demo's, on another real clinical table (scikit-learn's
diabetes study: 442 patients, disease progression after one year):

- a regression model on ten numeric columns (one float input, feature names given);
- a scikit-learn Pipeline whose ColumnTransformer one-hot encodes string columns and
  scales numeric ones, exported by skl2onnx with one input per column (card derived from
  the graph alone), as a regressor and as a classifier with a ZipMap output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.inference.card import FeatureMismatch, derive_card, embed_card
from workbench.inference.model import Model, load_sealed_model
from workbench.sealing.files import seal_file
from workbench.sealing.keyring import Keyring

NUMERIC = ["age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
STRINGS = ["sex", "bmi_class", "age_band"]


@pytest.fixture(scope="module")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.data.astype("float64")
    # String columns as a clinical table carries them: the sex code as written in the
    # study, the WHO BMI class and an age band.
    frame["sex"] = frame["sex"].map({1.0: "1", 2.0: "2"})
    frame["bmi_class"] = pd.cut(frame["bmi"], [0, 18.5, 25, 30, 100],
                                labels=["underweight", "normal", "overweight", "obese"],
                                right=False).astype(str)
    frame["age_band"] = pd.cut(frame["age"], [0, 40, 60, 120], labels=["<40", "40-59", "60+"],
                               right=False).astype(str)
    return frame, data.target.rename("progression")


def _one_input_per_column(frame: pd.DataFrame) -> list:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [(c, StringTensorType([None, 1]) if c in STRINGS else FloatTensorType([None, 1]))
            for c in frame.columns]


def _column_pipeline(estimator):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer([("strings", OneHotEncoder(handle_unknown="ignore"), STRINGS),
                                 ("numbers", StandardScaler(), NUMERIC)])
    return Pipeline([("columns", columns), ("estimator", estimator)])


def test_regression_on_numeric_columns(diabetes, tmp_path):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, target = diabetes
    numbers = frame[NUMERIC].to_numpy(np.float32)
    fitted = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(numbers, target)
    plain = to_onnx(fitted, initial_types=[("X", FloatTensorType([None, len(NUMERIC)]))],
                    target_opset=17).SerializeToString()
    card = derive_card(plain, NUMERIC, name="progression", task="regression",
                       trained_on="scikit-learn diabetes study (442 patients)")
    assert [o.columns for o in card.outputs] == [("variable",)]
    ring = Keyring.create(tmp_path / "owner.keyring")
    (tmp_path / "progression.onnx").write_bytes(embed_card(plain, card))
    sealed = seal_file(tmp_path / "progression.onnx", tmp_path / "progression.sealed",
                       name="progression", keyring=ring)
    model = load_sealed_model(sealed, "progression", ring)
    # The table has more columns than the model reads, and in another order.
    scores = model.predict(frame.iloc[::-1], batch_rows=100, progress=False)
    assert list(scores.columns) == ["variable"] and scores.index.equals(frame.index[::-1])
    np.testing.assert_allclose(scores["variable"], fitted.predict(numbers[::-1]), rtol=1e-4)


@pytest.fixture(scope="module")
def pipeline_regressor(diabetes):
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    frame, target = diabetes
    fitted = _column_pipeline(Ridge(alpha=1.0)).fit(frame, target)
    plain = to_onnx(fitted, initial_types=_one_input_per_column(frame), target_opset=17)
    return fitted, plain.SerializeToString()


def test_column_transformer_export_is_carded_from_its_graph(pipeline_regressor, diabetes):
    frame, _ = diabetes
    fitted, plain = pipeline_regressor
    card = derive_card(plain, name="progression-pipeline")
    assert card.features == tuple(frame.columns)
    assert {i.name: i.dtype for i in card.inputs if i.name in STRINGS} == dict.fromkeys(
        STRINGS, "string")
    model = Model(embed_card(plain, card), name="progression-pipeline")
    scores = model.predict(frame, batch_rows=128, progress=False)
    np.testing.assert_allclose(scores["variable"], fitted.predict(frame), rtol=1e-4)


def test_strings_come_from_any_string_column_type(pipeline_regressor, diabetes):
    import pyarrow as pa

    frame, _ = diabetes
    fitted, plain = pipeline_regressor
    model = Model(embed_card(plain, derive_card(plain, name="p")), name="p")
    typed = frame.astype({"sex": "category", "bmi_class": "string[python]"})
    expected = fitted.predict(frame)
    np.testing.assert_allclose(model.predict(typed, progress=False)["variable"], expected,
                               rtol=1e-4)
    dictionary = pa.Table.from_pandas(frame, preserve_index=False)
    dictionary = dictionary.set_column(dictionary.schema.get_field_index("sex"), "sex",
                                       dictionary.column("sex").dictionary_encode())
    np.testing.assert_allclose(model.predict(dictionary, progress=False)["variable"], expected,
                               rtol=1e-4)


def test_string_columns_refuse_numbers_and_missing_values(pipeline_regressor, diabetes):
    frame, _ = diabetes
    _, plain = pipeline_regressor
    model = Model(embed_card(plain, derive_card(plain, name="p")), name="p")
    coded = frame.assign(sex=frame["sex"].astype(int))
    with pytest.raises(FeatureMismatch) as numbers:
        model.predict(coded, progress=False)
    assert str(numbers.value) == ("model 'p' cannot score this DataFrame: wrong type sex "
                                  "(int64; input 'sex' takes strings as string)")
    gaps = frame.head(5).copy()
    gaps.loc[gaps.index[2], "age_band"] = None
    with pytest.raises(FeatureMismatch) as missing:
        model.predict(gaps, progress=False)
    assert str(missing.value) == (
        "model 'p' cannot score this DataFrame: missing values in age_band (input 'age_band' "
        "takes string, which has no missing value)")


def test_a_classifier_zipmap_becomes_one_column_per_class(diabetes):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    frame, target = diabetes
    worse = (target > target.median()).astype(int)
    fitted = _column_pipeline(LogisticRegression(max_iter=2000)).fit(frame, worse)
    plain = to_onnx(fitted, initial_types=_one_input_per_column(frame), target_opset=17)
    card = derive_card(plain.SerializeToString(), name="worse")
    zipmap = card.outputs[1]
    assert (zipmap.classes, zipmap.columns) == ((0, 1), ("output_probability_0",
                                                         "output_probability_1"))
    model = Model(embed_card(plain.SerializeToString(), card), name="worse")
    scores = model.predict(frame, batch_rows=50, progress=False)
    assert list(scores.columns) == ["output_label", "output_probability_0",
                                    "output_probability_1"]
    np.testing.assert_array_equal(scores["output_label"], fitted.predict(frame))
    np.testing.assert_allclose(scores[["output_probability_0", "output_probability_1"]],
                               fitted.predict_proba(frame), atol=1e-5)
