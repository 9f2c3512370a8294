"""The demo's main job until the kernel exists: seal, open in memory, score, summarise.

It plays both roles on one machine: the data owner seals the cohort and the model with a
local keyring; the analyst side then holds only the clinical key and the model key (never
the identifier key) and scores every patient in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.demo.assets import LABEL_COLUMN, ONNX_INPUT, PHI_COLUMNS, build_assets
from workbench.sealing.files import open_file, seal_file
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.resources import CLINICAL_ROLE, file_keyset, table_key
from workbench.sealing.table import open_table, seal_table

DATASET = "cohort"
MODEL = "risk-model"


@dataclass
class DemoReport:
    workdir: Path
    patients: int = 0
    auc: float = 0.0
    mean_risk: dict[str, float] = field(default_factory=dict)
    identifiers_refused: str = ""
    steps: list[tuple[str, float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"workbench demo: assets and sealed files in {self.workdir}"]
        out += [f"  {name:<44} {seconds * 1000:8.1f} ms" for name, seconds in self.steps]
        out.append(f"  patients scored: {self.patients}")
        out.append(f"  AUC against the recorded diagnosis: {self.auc:.4f}")
        for diagnosis, risk in sorted(self.mean_risk.items()):
            out.append(f"  mean malignancy risk, diagnosis {diagnosis}: {risk:.3f}")
        out.append(f"  identifiers without the PHI key: refused ({self.identifiers_refused})")
        return out


def _timed(report: DemoReport, name: str, action: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = action()
    report.steps.append((name, time.perf_counter() - start))
    return result


def run_demo(workdir: str | Path, rows: int = 569, seed: int = 7) -> DemoReport:
    import onnxruntime as ort
    from sklearn.metrics import roc_auc_score

    from workbench.errors import WorkbenchError

    workdir = Path(workdir)
    report = DemoReport(workdir)
    assets = _timed(report, "build demo assets (real data, skl2onnx)",
                    lambda: build_assets(workdir / "plain", rows, seed))
    keyring_path = workdir / "owner.keyring"
    if keyring_path.exists():
        keyring_path.unlink()
    keyring = Keyring.create(keyring_path)
    sealed_cohort = workdir / "cohort.sealed.parquet"
    sealed_model = workdir / "risk-model.sealed"
    _timed(report, "owner: seal cohort (PHI and clinical keys)", lambda: seal_table(
        assets.cohort, sealed_cohort, protect=PHI_COLUMNS, keyring=keyring, dataset=DATASET))
    _timed(report, "owner: seal model (Tink streaming AEAD)", lambda: seal_file(
        assets.model, sealed_model, name=MODEL, keyring=keyring))

    # The analyst side receives the clinical key and the model key, not the PHI key.
    released = MemoryKeySource({
        table_key(DATASET, CLINICAL_ROLE): keyring.get_key(table_key(DATASET, CLINICAL_ROLE)),
        file_keyset(MODEL): keyring.get_key(file_keyset(MODEL)),
    })
    features = assets.card_data["feature_columns"]
    frame = _timed(report, "analyst: open clinical columns in memory", lambda: open_table(
        sealed_cohort, released, columns=[*features, LABEL_COLUMN]))
    model_bytes = _timed(report, "analyst: open model in memory",
                         lambda: open_file(sealed_model, MODEL, released))
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    scores = _timed(report, "analyst: score every patient (onnxruntime)", lambda: session.run(
        ["probabilities"], {ONNX_INPUT: frame[features].to_numpy(np.float32)})[0][:, 1])
    try:
        open_table(sealed_cohort, released, columns=["name"])
    except WorkbenchError as err:
        report.identifiers_refused = str(err).split(": ", 1)[-1]
    else:
        raise WorkbenchError("identifier column opened without the PHI key: sealing is broken")

    truth = (frame[LABEL_COLUMN] == "M").to_numpy()
    report.patients = len(scores)
    report.auc = float(roc_auc_score(truth, scores))
    report.mean_risk = {"M (malignant)": float(scores[truth].mean()),
                        "B (benign)": float(scores[~truth].mean())}
    return report
