"""The data owner's side in tests: plaintext assets of another shape than the demo's, the
`workbench` command as the owner runs it, and snapshots of what publishing may change."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.demo.environment import KEYRING_NAME, Hospital
from workbench.demo.identities import identifiers
from workbench.kernel.catalog import CATALOG_NAME

PHI = ("patient_id", "mrn", "name", "date_of_birth", "postcode", "admission_date")
FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
ONNX_INPUT = "clinical"


def diabetes_visits(seed: int = 21) -> pd.DataFrame:
    """scikit-learn's diabetes data (442 real patients, baseline measurements in their
    units, disease progression a year later) joined to synthetic identifiers."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    clinical = data.frame.rename(columns={"target": "progression"}).astype("float64")
    return pd.concat([identifiers(len(clinical), seed), clinical], axis=1)


def progression_model(frame: pd.DataFrame, features=FEATURES, alpha: float = 1.0):
    """A ridge regression of progression on ``features``; (sklearn model, ONNX bytes)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    x = frame[list(features)].to_numpy(np.float32)
    model = Ridge(alpha=alpha).fit(x, frame["progression"].to_numpy())
    onnx_model = to_onnx(model, initial_types=[(ONNX_INPUT, FloatTensorType([None,
                                                                             len(features)]))],
                         target_opset=17)
    return model, onnx_model.SerializeToString()


@dataclass
class Owner:
    site: Hospital
    cli_path: str
    tmp: Path

    @property
    def keyring(self) -> Path:
        return self.site.workdir / KEYRING_NAME

    @property
    def data_dir(self) -> Path:
        return self.site.data_dir

    def policy_file(self, policy: dict[str, Any] | None = None) -> Path:
        path = self.tmp / f"policy-{os.urandom(3).hex()}.json"
        path.write_text(json.dumps(policy or self.site.policy))
        return path

    def env(self) -> dict[str, str]:
        # The owner's machine: the hospital's home (kernel.toml names the data directory),
        # its broker and admin token.
        return {**os.environ, "WORKBENCH_HOME": str(self.site.home),
                "WORKBENCH_KBS_URL": self.site.broker_url,
                "WORKBENCH_KBS_ADMIN_TOKEN": self.site.admin_token}

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([self.cli_path, *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout)

    def publish(self, kind: str, source: Path, name: str, *options: str
                ) -> subprocess.CompletedProcess:
        return self.run("publish", kind, str(source), "--name", name, "--keyring",
                        str(self.keyring), *options)

    def broker_state(self, name: str) -> dict[str, tuple[int, str | None, str]]:
        """path -> (version, key fingerprint, status) of the resources of ``name``."""
        with self.site.admin() as admin:
            return {r["path"]: (r["version"], r["key_fingerprint"], r["status"])
                    for r in admin.list_resources() if r["path"].split("/")[0] == name}

    def snapshot(self, name: str) -> dict[str, Any]:
        """Everything a publish of ``name`` may change, to compare before and after."""
        files = {p.name: p.read_bytes() for p in sorted(self.data_dir.iterdir()) if p.is_file()}
        return {"files": files, "keyring": self.keyring.read_bytes(),
                "broker": self.broker_state(name)}

    def catalog(self) -> dict[str, Any]:
        return json.loads((self.data_dir / CATALOG_NAME).read_text())


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The refusal: a non-zero exit and exactly one line on stderr."""
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("workbench: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()
