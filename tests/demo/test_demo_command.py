"""`workbench demo` (what `make demo` runs) end to end, as a user would start it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def test_demo_seals_opens_and_scores_every_patient(tmp_path: Path, workbench_cli: str):
    result = subprocess.run(
        [workbench_cli, "demo", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "patients scored: 569" in out
    auc = float(re.search(r"AUC against the recorded diagnosis: ([0-9.]+)", out).group(1))
    assert auc > 0.95
    assert "identifiers without the PHI key: refused (key 'cohort/table-key/phi'" in out
    sealed = (tmp_path / "cohort.sealed.parquet").read_bytes()
    assert sealed[:4] == b"PARE" and b"MRN" not in sealed
