"""The owner's commands as a user runs them: one error line, non-zero exit, nothing left."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest


def run(cli: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:workbench"},
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("workbench: error: ")
    return lines[0].removeprefix("workbench: error: ")


@pytest.fixture
def owner(tmp_path: Path, workbench_cli: str, demo_assets):
    """A working directory with a keyring, the plain assets, a sealed cohort and model."""
    shutil.copy(demo_assets.cohort, tmp_path / "cohort.parquet")
    shutil.copy(demo_assets.model, tmp_path / "model.onnx")
    assert run(workbench_cli, "keyring", "new", "k.json", cwd=tmp_path).returncode == 0
    sealed = run(workbench_cli, "seal", "table", "cohort.parquet", "--out", "cohort.sealed",
                 "--protect", "patient_id,mrn,name,date_of_birth,postcode,admission_date",
                 "--keyring", "k.json", cwd=tmp_path)
    assert sealed.returncode == 0, sealed.stderr
    sealed = run(workbench_cli, "seal", "file", "model.onnx", "--out", "model.sealed",
                 "--keyring", "k.json", "--name", "risk-model", cwd=tmp_path)
    assert sealed.returncode == 0, sealed.stderr
    return tmp_path


def test_seal_and_unseal_round_trip(owner: Path, workbench_cli: str):
    result = run(workbench_cli, "unseal", "cohort.sealed", "--out", "back.parquet",
                 "--keyring", "k.json", cwd=owner)
    assert result.returncode == 0, result.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(owner / "back.parquet"),
                                  pd.read_parquet(owner / "cohort.parquet"))
    assert (owner / "back.parquet").stat().st_mode & 0o077 == 0
    result = run(workbench_cli, "unseal", "model.sealed", "--out", "back.onnx",
                 "--keyring", "k.json", cwd=owner)
    assert result.returncode == 0, result.stderr
    assert (owner / "back.onnx").read_bytes() == (owner / "model.onnx").read_bytes()


def test_keyring_list_shows_names_not_material(owner: Path, workbench_cli: str):
    result = run(workbench_cli, "keyring", "list", "k.json", cwd=owner)
    assert result.returncode == 0
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert names == ["cohort/table-key/clinical", "cohort/table-key/phi",
                     "risk-model/file-keyset/main"]
    import json
    material = json.loads((owner / "k.json").read_text())["keys"]["cohort/table-key/phi"]
    assert material["material"] not in result.stdout


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("prepare", "args", "cause"),
    [
        (None, ("unseal", "cohort.sealed", "--out", "o.parquet", "--keyring", "other.json"),
         "cohort.sealed: key 'cohort/table-key/clinical' does not open this data (wrong key)"),
        (None, ("unseal", "cohort.sealed", "--out", "o.parquet", "--keyring", "empty.json"),
         "cohort.sealed: key 'cohort/table-key/clinical' is not available: not in keyring "
         "empty.json"),
        ("truncate-table", ("unseal", "cut.sealed", "--out", "o.parquet", "--keyring", "k.json"),
         "cut.sealed: table is truncated"),
        ("tamper-model", ("unseal", "bad.sealed", "--out", "o.onnx", "--keyring", "k.json"),
         "bad.sealed: sealed file is damaged, truncated, or not for this key "
         "(authentication failed)"),
        (None, ("seal", "table", "cohort.parquet", "--out", "o.parquet", "--protect", "ssn",
                "--keyring", "k.json"), "column(s) to protect not in the table: ssn"),
        ("text", ("seal", "table", "notes.txt", "--out", "o.parquet", "--protect", "a",
                  "--keyring", "k.json"),
         "notes.txt: is an unrecognised file, not a Parquet or CSV table"),
        ("text", ("seal", "file", "notes.txt", "--out", "o.onnx", "--name", "m",
                  "--keyring", "k.json"), "notes.txt: is an unrecognised file, not an ONNX model"),
        (None, ("unseal", "model.onnx", "--out", "o.onnx", "--keyring", "k.json"),
         "model.onnx: is an ONNX model, not a sealed table or file"),
        (None, ("unseal", "absent.sealed", "--out", "o.onnx", "--keyring", "k.json"),
         "absent.sealed: file not found"),
        ("open-keyring", ("unseal", "model.sealed", "--out", "o.onnx", "--keyring", "k.json"),
         "k.json: keyring is accessible to group or others (mode 0644); run `chmod 600 k.json`"),
    ],
)
def test_bad_input_gives_one_line_and_leaves_nothing(
    owner: Path, workbench_cli: str, prepare, args, cause
):
    run(workbench_cli, "keyring", "new", "other.json", cwd=owner)
    run(workbench_cli, "seal", "table", "cohort.parquet", "--out", "other.sealed",
        "--protect", "mrn", "--keyring", "other.json", cwd=owner)
    run(workbench_cli, "keyring", "new", "empty.json", cwd=owner)
    data = (owner / "cohort.sealed").read_bytes()
    if prepare == "truncate-table":
        (owner / "cut.sealed").write_bytes(data[: len(data) // 3])
    elif prepare == "tamper-model":
        model = bytearray((owner / "model.sealed").read_bytes())
        model[-100] ^= 0x80
        (owner / "bad.sealed").write_bytes(model)
    elif prepare == "text":
        (owner / "notes.txt").write_text("hello\n")
    elif prepare == "open-keyring":
        (owner / "k.json").chmod(0o644)
    before = _files(owner)
    keyring_before = (owner / "k.json").read_bytes()
    result = run(workbench_cli, *args, cwd=owner)
    assert result.returncode != 0
    assert one_error_line(result) .startswith(cause)
    assert _files(owner) == before, "no partial or output file may be left behind"
    assert (owner / "k.json").read_bytes() == keyring_before


def test_malformed_input_exits_2_and_refusals_exit_1(owner: Path, workbench_cli: str):
    (owner / "notes.txt").write_text("hello\n")
    malformed = run(workbench_cli, "unseal", "notes.txt", "--out", "o", "--keyring", "k.json",
                    cwd=owner)
    assert malformed.returncode == 2
    run(workbench_cli, "keyring", "new", "other.json", cwd=owner)
    refused = run(workbench_cli, "unseal", "cohort.sealed", "--out", "o",
                  "--keyring", "other.json", cwd=owner)
    assert refused.returncode == 1
