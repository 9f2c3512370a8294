"""A new data owner's own table and model, of another shape than the demo's, published with
`workbench publish` and scored in a real Confidential Python kernel.

The table is scikit-learn's diabetes data (a CSV, 442 patients, identifiers protected); the
models are regressions of disease progression (one float output), one carded from
`--features`, one from a card file naming its output column.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from kernel_helpers import RunningKernel
from publish_helpers import FEATURES, ONNX_INPUT, PHI, diabetes_visits, progression_model

from workbench.sealing.keyring import Keyring
from workbench.sealing.table import open_table

TABLE, MODEL, CARDED = "diabetes-visits", "progression-model", "progression-bmi"
CARDED_FEATURES = ("bmi", "bp", "s5")


@pytest.fixture(scope="module")
def visits():
    return diabetes_visits()


@pytest.fixture(scope="module")
def published(site, visits, owner_cli, tmp_path_factory):
    """Publish the table and both models through the command line, as the owner would."""
    from publish_helpers import Owner

    tmp = tmp_path_factory.mktemp("owner")
    owner = Owner(site, owner_cli, tmp)
    source = tmp / "diabetes-visits.csv"
    visits.to_csv(source, index=False)
    model, onnx_bytes = progression_model(visits)
    model_path = tmp / "progression.onnx"
    model_path.write_bytes(onnx_bytes)
    carded, carded_bytes = progression_model(visits, CARDED_FEATURES, alpha=0.1)
    carded_path = tmp / "progression-bmi.onnx"
    carded_path.write_bytes(carded_bytes)
    card = tmp / "card.json"
    card.write_text(json.dumps({
        "name": CARDED, "task": "disease progression one year after baseline",
        "inputs": [{"name": ONNX_INPUT, "dtype": "float32", "shape": [None, 3]}],
        "feature_columns": list(CARDED_FEATURES), "feature_dtype": "float32",
        "outputs": [{"name": "variable", "dtype": "float32", "columns": ["progression_1y"]}]}))
    policy = str(owner.policy_file())
    results = {
        "table": owner.publish("table", source, TABLE, "--protect", ",".join(PHI),
                               "--policy", policy, "--description", "diabetes baseline visits"),
        "model": owner.publish("model", model_path, MODEL, "--features", ",".join(FEATURES),
                               "--policy", policy),
        "carded": owner.publish("model", carded_path, CARDED, "--card", str(card),
                                "--policy", policy),
    }
    return owner, results, model, carded


def test_each_publish_reports_what_it_did(published):
    owner, results, _model, _carded = published
    for result in results.values():
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    table = results["table"].stdout
    assert f"published table '{TABLE}' as {owner.data_dir / (TABLE + '.sealed.parquet')}" \
        in table
    assert f"{TABLE}/table-key/clinical: added in the key broker" in table
    assert f"{TABLE}/table-key/phi: added in the key broker" in table
    assert "sealed file: written" in table and "catalog entry: added" in table
    assert f"{MODEL}/file-keyset/main: added in the key broker" in results["model"].stdout


def test_the_broker_holds_the_keyrings_keys_and_the_catalog_lists_all(published):
    owner, _results, _model, _carded = published
    ring = {e.resource: e.fingerprint for e in Keyring.open(owner.keyring).entries()}
    for name in (TABLE, MODEL, CARDED):
        state = owner.broker_state(name)
        assert state and all(version == 1 and status == "active" and ring[path] == key
                             for path, (version, key, status) in state.items())
    catalog = owner.catalog()
    assert catalog["datasets"][TABLE] == {"path": f"{TABLE}.sealed.parquet",
                                          "description": "diabetes baseline visits"}
    assert catalog["models"][MODEL]["path"] == f"{MODEL}.sealed"
    assert catalog["models"][CARDED]["path"] == f"{CARDED}.sealed"
    # The demo's entries are still there, untouched.
    assert set(catalog["datasets"]) >= {"cohort", TABLE}
    sealed = (owner.data_dir / f"{TABLE}.sealed.parquet").read_bytes()
    assert sealed[:4] == b"PARE" and b"MRN" not in sealed
    assert not [p for p in owner.data_dir.iterdir() if p.name.startswith(".")]


def test_a_kernel_scores_the_published_table_with_the_published_models(
        published, site, visits, tmp_path):
    _owner, _results, model, carded = published
    site.repin()
    kernel = RunningKernel(site.kernel_env(WORKBENCH_AUTO_APPROVE="1"), tmp_path / "kernel.log")
    try:
        outcome = kernel.execute(
            "import workbench as wb\n"
            f"model = wb.load_model({MODEL!r})\n"
            f"carded = wb.load_model({CARDED!r})\n"
            f"visits = wb.open_dataset({TABLE!r}, columns=model.features)\n"
            "scores = model.predict(visits)\n"
            "other = carded.predict(visits[carded.features])\n")
        assert outcome.error is None, outcome.evalue
        seen = kernel.value("{'features': model.features, 'columns': list(scores.columns), "
                            "'other': list(other.columns), "
                            "'scores': scores.iloc[:, 0].tolist(), "
                            "'bmi': other['progression_1y'].tolist(), "
                            "'released': sorted(r['resource'] for r in wb.status()['released'])}")
    finally:
        kernel.shutdown()
    assert seen["features"] == list(FEATURES)
    assert seen["columns"] == ["variable"] and seen["other"] == ["progression_1y"]
    expected = model.predict(visits[list(FEATURES)].to_numpy(np.float32))
    np.testing.assert_allclose(seen["scores"], expected, rtol=1e-4, atol=1e-2)
    expected_bmi = carded.predict(visits[list(CARDED_FEATURES)].to_numpy(np.float32))
    np.testing.assert_allclose(seen["bmi"], expected_bmi, rtol=1e-4, atol=1e-2)
    # Features only: the identifier key never left the broker.
    assert seen["released"] == sorted([f"{CARDED}/file-keyset/main",
                                       f"{TABLE}/table-key/clinical",
                                       f"{MODEL}/file-keyset/main"])


def test_the_owner_reads_back_what_was_published(published, visits):
    owner, _results, _model, _carded = published
    frame = open_table(owner.data_dir / f"{TABLE}.sealed.parquet", Keyring.open(owner.keyring))
    assert list(frame.columns) == list(visits.columns)
    np.testing.assert_allclose(frame["progression"], visits["progression"])
    assert list(frame["mrn"]) == list(visits["mrn"])
