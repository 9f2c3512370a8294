"""The demo cohort and risk model, built from the Wisconsin Diagnostic Breast Cancer data.

scikit-learn ships the data (569 real patients, 30 clinical features); nothing is
downloaded. Identifiers are synthetic and joined row by row. For benchmarks, ``rows`` above
569 resamples patients with small Gaussian noise (1% of each feature's spread).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.demo.identities import identifiers
from workbench.errors import WorkbenchError
from workbench.inference.card import embed_card
from workbench.sealing.atomic import atomic_output

COHORT_FILE = "cohort.parquet"
MODEL_FILE = "risk-model.onnx"
CARD_FILE = "risk-model.card.json"
PHI_COLUMNS = ("patient_id", "mrn", "name", "date_of_birth", "postcode", "admission_date")
LABEL_COLUMN = "diagnosis"
ONNX_INPUT = "features"
# skl2onnx computes in float32; this is the agreement the conversion must reach.
CONVERSION_TOLERANCE = 1e-5
NOISE_FRACTION = 0.01


@dataclass(frozen=True)
class DemoAssets:
    cohort: Path
    model: Path
    card: Path
    card_data: dict


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def clinical_frame() -> tuple[pd.DataFrame, pd.Series]:
    """The real data: 30 features (snake_case names) and the diagnosis ('M' or 'B')."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    features = data.data.rename(columns=_snake).astype("float64")
    # scikit-learn codes malignant as 0 and benign as 1.
    diagnosis = pd.Series(np.where(data.target == 0, "M", "B"), name=LABEL_COLUMN)
    return features, diagnosis


def build_cohort(rows: int = 569, seed: int = 7) -> pd.DataFrame:
    if rows < 1:
        raise WorkbenchError(f"--rows must be at least 1 (got {rows})")
    features, diagnosis = clinical_frame()
    rng = np.random.default_rng(seed)
    if rows == len(features):
        index = np.arange(rows)
        chosen = features.to_numpy()
    else:
        index = rng.integers(0, len(features), rows) if rows > len(features) else (
            rng.permutation(len(features))[:rows]
        )
        chosen = features.to_numpy()[index]
        if rows > len(features):
            spread = features.std().to_numpy() * NOISE_FRACTION
            chosen = np.clip(chosen + rng.normal(0.0, 1.0, chosen.shape) * spread, 0.0, None)
    clinical = pd.DataFrame(chosen, columns=features.columns)
    cohort = pd.concat(
        [
            identifiers(rows, seed),
            clinical,
            pd.Series(diagnosis.to_numpy()[index], name=LABEL_COLUMN, dtype="string"),
        ],
        axis=1,
    )
    return cohort


def train_model(seed: int = 7):
    """Train on the real 569 patients; returns (pipeline, feature names, held-out AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, diagnosis = clinical_frame()
    target = (diagnosis == "M").to_numpy().astype(int)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.25, stratify=target, random_state=seed
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=0.5))
    model.fit(x_train.to_numpy(np.float32), y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test.to_numpy(np.float32))[:, 1])
    return model, list(features.columns), float(auc)


def to_onnx(model, n_features: int) -> bytes:
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert(
        model,
        initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    return onnx_model.SerializeToString()


def check_conversion(model, onnx_bytes: bytes, features: np.ndarray) -> float:
    """Largest probability difference between scikit-learn and onnxruntime; must be tiny."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_proba = session.run(["probabilities"], {ONNX_INPUT: features})[0]
    gap = float(np.max(np.abs(onnx_proba - model.predict_proba(features))))
    if gap > CONVERSION_TOLERANCE:
        raise WorkbenchError(
            f"ONNX conversion disagrees with scikit-learn by {gap:.2e} "
            f"(> {CONVERSION_TOLERANCE:.0e})"
        )
    return gap


def build_assets(out: str | Path, rows: int = 569, seed: int = 7) -> DemoAssets:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = build_cohort(rows, seed)
    model, feature_names, auc = train_model(seed)
    onnx_bytes = to_onnx(model, len(feature_names))
    full_features, _ = clinical_frame()
    gap = check_conversion(model, onnx_bytes, full_features.to_numpy(np.float32))
    card = {
        "name": "risk-model",
        "task": "probability that a breast mass is malignant",
        "trained_on": "Wisconsin Diagnostic Breast Cancer (scikit-learn), 75% stratified split",
        "estimator": "StandardScaler + LogisticRegression (scikit-learn), converted by skl2onnx",
        "inputs": [{"name": ONNX_INPUT, "dtype": "float32", "shape": [None, len(feature_names)]}],
        "feature_columns": feature_names,
        "feature_dtype": "float32",
        "outputs": [
            {"name": "label", "dtype": "int64"},
            {"name": "probabilities", "dtype": "float32", "classes": ["benign", "malignant"],
             "columns": ["probability_benign", "probability_malignant"]},
        ],
        "held_out_auc": round(auc, 6),
        "onnx_vs_sklearn_max_abs_diff": gap,
        "seed": seed,
    }
    # The card also travels inside the model, so it is sealed and authenticated with it.
    onnx_bytes = embed_card(onnx_bytes, card)
    paths = DemoAssets(out / COHORT_FILE, out / MODEL_FILE, out / CARD_FILE, card)
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_output(paths.cohort) as handle:
        pq.write_table(pa.Table.from_pandas(cohort, preserve_index=False), handle)
    with atomic_output(paths.model) as handle:
        handle.write(onnx_bytes)
    with atomic_output(paths.card) as handle:
        handle.write(json.dumps(card, indent=2).encode() + b"\n")
    return paths
