"""The demo workload run in a remote kernel, and what its answer must be.

``SCORE_CELL`` releases the model and the cohort's clinical columns (non-interactive
approval) and scores every patient; ``plain_scores`` computes the same scores here from the
plaintext assets (the hospital built identical ones from the same seed before sealing)."""

from __future__ import annotations

from typing import Any

ATTEST_CELL = "import workbench as wb\nreport = wb.attest()\nreport"
SCORE_CELL = """
import json
import workbench as wb
from sklearn.metrics import roc_auc_score
model = wb.load_model("risk-model", approve=True)
cohort = wb.open_dataset("cohort", columns=[*model.features, "diagnosis"], approve=True)
scores = model.predict(cohort, progress=False)
malignant = scores["probability_malignant"]
print(json.dumps({"patients": len(scores), "probability_malignant": malignant.tolist(),
                  "auc": float(roc_auc_score(cohort["diagnosis"] == "M", malignant)),
                  "released": [r["resource"] for r in wb.status()["released"]]}))
"""
# What the model and the clinical columns need: the identifier (PHI) key is never released.
EXPECTED_RELEASES = ["cohort/table-key/clinical", "risk-model/file-keyset/main"]


def plain_scores(demo_assets: Any) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    cohort = pd.read_parquet(demo_assets.cohort)
    card = demo_assets.card_data
    session = ort.InferenceSession(demo_assets.model.read_bytes(),
                                   providers=["CPUExecutionProvider"])
    features = cohort[card["feature_columns"]].to_numpy(np.float32)
    _label, proba = session.run(None, {card["inputs"][0]["name"]: features})
    malignant = proba[:, 1]
    return {"probability_malignant": malignant.tolist(),
            "auc": float(roc_auc_score(cohort["diagnosis"] == "M", malignant))}


def check_scores(result: dict[str, Any], expected: dict[str, Any]) -> None:
    import numpy as np

    assert result["patients"] == len(expected["probability_malignant"]) == 569
    np.testing.assert_array_equal(np.array(result["probability_malignant"], np.float32),
                                  np.array(expected["probability_malignant"], np.float32))
    assert abs(result["auc"] - expected["auc"]) < 1e-9, (result["auc"], expected["auc"])
    assert result["auc"] > 0.95
    assert sorted(result["released"]) == EXPECTED_RELEASES
