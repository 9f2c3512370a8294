"""Fixtures: the hospital's broker with the sealed demo assets, and one JupyterHub per test
module (hub start-up is slow), configured by deploy/jupyterhub/jupyterhub_config.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_processes import Hub, running_hub

from workbench.demo.environment import Hospital, hospital


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    """A broker on a loopback port; the cohort and model registered under the demo's
    simulated-TEE policy pinning this installation's kernel measurement."""
    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="module")
def hub(site: Hospital, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(site, tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture(scope="session")
def plain_scores(demo_assets):
    """What the demo model says about the demo cohort, computed here from the plaintext
    assets (the hospital built the same ones from the same seed before sealing them)."""
    import numpy as np
    import onnxruntime as ort
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    cohort = pd.read_parquet(demo_assets.cohort)
    features = demo_assets.card_data["feature_columns"]
    session = ort.InferenceSession(demo_assets.model.read_bytes(),
                                   providers=["CPUExecutionProvider"])
    _label, proba = session.run(None, {"features": cohort[features].to_numpy(np.float32)})
    malignant = proba[:, 1]
    return {"probability_malignant": malignant.tolist(),
            "auc": float(roc_auc_score(cohort["diagnosis"] == "M", malignant))}
