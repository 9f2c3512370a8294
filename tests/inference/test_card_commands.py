"""``workbench card show`` and ``workbench seal file --card | --features``, run as the data
owner runs them: one line on success or error, and nothing left behind on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_builders import image_model, multi_model

from workbench.inference.model import load_sealed_model
from workbench.sealing.keyring import Keyring


def workbench(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"})


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("workbench: error: ")


@pytest.fixture
def owner(tmp_path: Path, demo_assets) -> Path:
    (tmp_path / "risk.onnx").write_bytes(demo_assets.model.read_bytes())
    (tmp_path / "image.onnx").write_bytes(image_model())
    (tmp_path / "multi.onnx").write_bytes(multi_model())
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    Keyring.create(tmp_path / "k.json")
    return tmp_path


def test_show_the_card_a_model_carries(owner):
    shown = workbench("card", "show", "risk.onnx", cwd=owner)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "risk.onnx: the card the model carries"
    assert lines[1] == "name         risk-model"
    assert "inputs" in lines and "outputs" in lines
    features = next(line for line in lines if line.strip().startswith("features"))
    assert features.split()[:5] == ["features", "float32", "[N,", "30]", "columns"]
    assert "mean_radius, mean_texture" in features
    assert any(line.split()[0] == "probabilities" and "probability_malignant" in line
               for line in lines)


def test_show_a_derived_card_as_json(owner):
    shown = workbench("card", "show", "image.onnx", "--json", "--name", "slices", cwd=owner)
    assert shown.returncode == 0, shown.stderr
    card = json.loads(shown.stdout)
    assert (card["format"], card["name"]) == ("workbench-card/2", "slices")
    assert card["inputs"][0] == {"name": "pixels", "dtype": "float32",
                                 "shape": [None, 1, 16, 16], "array": "pixels"}
    assert card["outputs"][1] == {"name": "mask", "dtype": "float32",
                                  "shape": [None, 1, 16, 16], "array": "mask"}
    text = workbench("card", "show", "image.onnx", cwd=owner).stdout
    assert text.splitlines()[0] == "image.onnx: derived from the graph (the model carries no card)"


@pytest.mark.parametrize(("args", "message"), [
    (("multi.onnx",), "multi.onnx: cannot derive a card: input 'x' takes 3 columns: name them "
                      "(--features, or the model's 'feature_names' metadata)"),
    (("multi.onnx", "--features", "a,b,c,d"),
     "multi.onnx: cannot derive a card: --features name(s) 4 column(s), the model's column "
     "inputs take 5 (x [N, 3], flag [N, 1], count [N, 1])"),
    (("table.csv",), "table.csv: not an ONNX model (not an ONNX protobuf)"),
    (("absent.onnx",), "absent.onnx: file not found"),
])
def test_show_refusals(owner, args, message):
    assert error_line(workbench("card", "show", *args, cwd=owner)) == message


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_seal_with_features_embeds_a_derived_card(owner):
    sealed = workbench("seal", "file", "multi.onnx", "--out", "multi.sealed", "--keyring",
                       "k.json", "--name", "multi", "--features",
                       "glucose,insulin,bmi,smoker,visits", cwd=owner)
    assert sealed.returncode == 0, sealed.stderr
    assert sealed.stdout == (
        "sealed file multi.onnx -> multi.sealed as resource 'multi/file-keyset/main' with a "
        "card derived from its graph (3 input(s), outputs: total, scaled_0, scaled_1, "
        "scaled_2, flag_out, count_plus, column_view)\n")
    assert not any(name.startswith(".workbench-seal-") for name in _files(owner))
    model = load_sealed_model(owner / "multi.sealed", "multi", Keyring.open(owner / "k.json"))
    assert model.features == ["glucose", "insulin", "bmi", "smoker", "visits"]
    frame = pd.DataFrame({"glucose": [1.0], "insulin": [2.0], "bmi": [3.0], "smoker": [True],
                          "visits": np.array([4], dtype=np.int64)})
    assert model.predict(frame, progress=False)["total"].tolist() == [6.0]


def test_seal_with_an_edited_card(owner):
    shown = workbench("card", "show", "image.onnx", "--json", cwd=owner)
    card = json.loads(shown.stdout)
    card["description"] = "mean-intensity toy model for tests"
    card["outputs"][0]["columns"] = ["p_benign", "p_malignant"]
    (owner / "card.json").write_text(json.dumps(card))
    sealed = workbench("seal", "file", "image.onnx", "--out", "image.sealed", "--keyring",
                       "k.json", "--name", "slices", "--card", "card.json", cwd=owner)
    assert sealed.returncode == 0, sealed.stderr
    assert "with the card given (2 input(s), outputs: p_benign, p_malignant, mask)" in \
        sealed.stdout
    back = workbench("unseal", "image.sealed", "--out", "back.onnx", "--keyring", "k.json",
                     cwd=owner)
    assert back.returncode == 0, back.stderr
    carried = json.loads(workbench("card", "show", "back.onnx", "--json", cwd=owner).stdout)
    assert carried["description"] == "mean-intensity toy model for tests"
    assert carried["outputs"][0]["columns"] == ["p_benign", "p_malignant"]


def test_a_plain_model_is_sealed_with_a_derived_card_and_a_carded_one_as_is(owner):
    sealed = workbench("seal", "file", "image.onnx", "--out", "image.sealed", "--keyring",
                       "k.json", "--name", "slices", cwd=owner)
    assert sealed.returncode == 0, sealed.stderr
    assert "with a card derived from its graph" in sealed.stdout
    model = load_sealed_model(owner / "image.sealed", "slices", Keyring.open(owner / "k.json"))
    assert model.arrays == ["pixels"] and model.card.name == "slices"
    carded = workbench("seal", "file", "risk.onnx", "--out", "risk.sealed", "--keyring",
                       "k.json", "--name", "risk-model", cwd=owner)
    assert "with the card it carries (1 input(s), outputs: label, probability_benign, " \
           "probability_malignant)" in carded.stdout
    workbench("unseal", "risk.sealed", "--out", "back.onnx", "--keyring", "k.json", cwd=owner)
    assert (owner / "back.onnx").read_bytes() == (owner / "risk.onnx").read_bytes()


def test_seal_refusals_leave_nothing_behind(owner):
    card = json.loads(workbench("card", "show", "image.onnx", "--json", cwd=owner).stdout)
    card["inputs"][0]["dtype"] = "uint8"
    card["outputs"][0]["columns"] = ["only_one"]
    (owner / "wrong.json").write_text(json.dumps(card))
    (owner / "broken.json").write_text("{not json")
    before = _files(owner)
    cases = [
        (("image.onnx", "--card", "wrong.json"),
         "image.onnx: the card and the model's graph disagree: input 'pixels': the card says "
         "uint8, the graph takes float32; output 'probabilities': the card lists 1 column(s), "
         "the graph gives 2"),
        (("multi.onnx",), "multi.onnx: cannot derive a card: input 'x' takes 3 columns: name "
                          "them (--features, or the model's 'feature_names' metadata)"),
        (("image.onnx", "--card", "broken.json"),
         "broken.json: model card is not JSON (Expecting property name enclosed in double "
         "quotes: line 1 column 2 (char 1))"),
        (("image.onnx", "--card", "absent.json"), "absent.json: file not found"),
        (("table.csv", "--features", "a,b"), "table.csv: is a CSV table, not an ONNX model"),
    ]
    for args, message in cases:
        result = workbench("seal", "file", *args, "--out", "x.sealed", "--keyring", "k.json",
                           "--name", "x", cwd=owner)
        assert error_line(result) == message
        assert _files(owner) == before
    both = workbench("seal", "file", "image.onnx", "--out", "x.sealed", "--keyring", "k.json",
                     "--name", "x", "--card", "wrong.json", "--features", "a", cwd=owner)
    assert both.returncode == 2
    assert "argument --features: not allowed with argument --card" in both.stderr
