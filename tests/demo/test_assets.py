"""Demo assets: the real data, deterministic identifiers, and a checked ONNX conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from workbench.demo.assets import (
    PHI_COLUMNS,
    build_assets,
    build_cohort,
    check_conversion,
    to_onnx,
    train_model,
)
from workbench.errors import WorkbenchError


def test_cohort_carries_the_real_patients(demo_assets):
    cohort = pd.read_parquet(demo_assets.cohort)
    real = load_breast_cancer()
    assert cohort.shape == (569, len(PHI_COLUMNS) + 30 + 1)
    np.testing.assert_array_equal(cohort.iloc[:, len(PHI_COLUMNS):-1].to_numpy(), real.data)
    assert (cohort["diagnosis"] == "M").sum() == int((real.target == 0).sum()) == 212
    assert cohort["mrn"].is_unique and cohort["patient_id"].is_unique


def test_identifiers_are_deterministic_for_a_seed():
    first, again, other = build_cohort(50, seed=3), build_cohort(50, seed=3), build_cohort(50, 4)
    pd.testing.assert_frame_equal(first, again)
    assert not first["name"].equals(other["name"])
    ages = (first["admission_date"] - first["date_of_birth"]).dt.days / 365.25
    assert ages.between(29, 86).all()


def test_more_rows_resample_with_small_noise():
    big = build_cohort(2000, seed=1)
    real = load_breast_cancer(as_frame=True).data
    assert len(big) == 2000 and big["mrn"].is_unique
    radius = big["mean_radius"]
    assert radius.min() >= 0
    # Noise is 1% of the spread: resampled values stay near real ones, yet are not copies.
    assert abs(radius.mean() - real["mean radius"].mean()) < 0.5
    assert not np.isin(radius.to_numpy(), real["mean radius"].to_numpy()).all()


def test_model_card_records_inputs_and_auc(demo_assets):
    card = json.loads(demo_assets.card.read_text())
    assert card["inputs"] == [{"name": "features", "dtype": "float32", "shape": [None, 30]}]
    assert len(card["feature_columns"]) == 30 and card["feature_columns"][0] == "mean_radius"
    assert 0.95 < card["held_out_auc"] <= 1.0
    assert card["onnx_vs_sklearn_max_abs_diff"] <= 1e-5
    session = ort.InferenceSession(str(demo_assets.model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert "probabilities" in [o.name for o in session.get_outputs()]


def test_onnx_agrees_with_sklearn_on_every_patient(demo_assets):
    model, _names, _auc = train_model(seed=7)
    features = load_breast_cancer().data.astype(np.float32)
    session = ort.InferenceSession(str(demo_assets.model), providers=["CPUExecutionProvider"])
    onnx_proba = session.run(["probabilities"], {"features": features})[0]
    assert np.max(np.abs(onnx_proba - model.predict_proba(features))) <= 1e-5


def test_conversion_check_refuses_a_model_that_disagrees():
    model, names, _ = train_model(seed=7)
    other, _, _ = train_model(seed=8)
    features = load_breast_cancer().data.astype(np.float32)
    with pytest.raises(WorkbenchError, match=r"ONNX conversion disagrees with scikit-learn by"):
        check_conversion(model, to_onnx(other, len(names)), features)


def test_assets_command_writes_the_three_files(tmp_path: Path, workbench_cli: str):
    import subprocess

    result = subprocess.run(
        [workbench_cli, "demo", "assets", "--out", str(tmp_path), "--rows", "700", "--seed", "5"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cohort.parquet", "risk-model.card.json", "risk-model.onnx"]
    assert len(pd.read_parquet(tmp_path / "cohort.parquet")) == 700


def test_build_assets_rejects_zero_rows(tmp_path: Path):
    with pytest.raises(WorkbenchError, match="--rows must be at least 1"):
        build_assets(tmp_path, rows=0)
