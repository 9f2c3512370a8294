"""Every refusal of `workbench publish`: one line on stderr naming the problem, a non-zero
exit, and nothing written (data directory, keyring and broker as they were)."""

from __future__ import annotations

import json
import os

import pytest
from publish_helpers import (
    FEATURES,
    ONNX_INPUT,
    PHI,
    diabetes_visits,
    one_line_error,
    progression_model,
)

from workbench.publish.keys import fresh_key


@pytest.fixture(scope="module")
def visits_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "visits.csv"
    diabetes_visits().iloc[:50].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "model.onnx"
    path.write_bytes(progression_model(diabetes_visits())[1])
    return path


def fresh(stem: str) -> str:
    return f"{stem}-{os.urandom(3).hex()}"


def refused(owner, name: str, *args: str) -> str:
    """Run a publish expected to fail; assert it changed nothing; return its error line."""
    before = owner.snapshot(name)
    catalog = owner.catalog()
    message = one_line_error(owner.run("publish", *args))
    assert owner.snapshot(name) == before
    assert owner.catalog() == catalog
    return message


def table_args(owner, source, name, *extra):
    return ("table", str(source), "--name", name, "--keyring", str(owner.keyring), *extra)


def test_an_unknown_protect_column(owner, visits_csv):
    name = fresh("t")
    message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect",
                                               "mrn,nhs_number", "--policy",
                                               str(owner.policy_file())))
    assert "column(s) to protect not in the table: nhs_number (columns are: patient_id, " \
        "mrn, name," in message


def test_a_missing_input_file(owner):
    name = fresh("t")
    missing = owner.tmp / "no-such.csv"
    message = refused(owner, name, *table_args(owner, missing, name, "--protect", "mrn"))
    assert message == f"workbench: error: {missing}: file not found"


def test_an_input_of_the_wrong_kind(owner, model_onnx):
    name = fresh("t")
    message = refused(owner, name, *table_args(owner, model_onnx, name, "--protect", "mrn"))
    assert message.endswith(f"{model_onnx}: is an ONNX model, not a Parquet or CSV table")


def test_an_invalid_name(owner, visits_csv):
    message = one_line_error(owner.run("publish", *table_args(owner, visits_csv, "../cohort",
                                                              "--protect", "mrn")))
    assert "invalid resource name '../cohort': use letters, digits, '.', '-' or '_'" in message


def test_an_unreachable_broker(owner, visits_csv):
    name = fresh("t")
    message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect",
                                               ",".join(PHI), "--policy",
                                               str(owner.policy_file()), "--url",
                                               "http://127.0.0.1:9"))
    assert "cannot reach the key broker at http://127.0.0.1:9" in message


def test_new_keys_need_a_policy(owner, visits_csv):
    name = fresh("t")
    message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect",
                                               ",".join(PHI)))
    assert message == (f"workbench: error: {name}/table-key/clinical is not registered with "
                       "the key broker yet: give its release policy with --policy POLICY.json")


def test_a_model_without_a_card_or_feature_names(owner, model_onnx):
    name = fresh("m")
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--policy", str(owner.policy_file()))
    assert message == (f"workbench: error: {model_onnx}: cannot derive a card: input "
                       f"'{ONNX_INPUT}' takes 10 columns: name them (--features, or the "
                       "model's 'feature_names' metadata)")


def test_features_that_do_not_fit_the_input(owner, model_onnx):
    name = fresh("m")
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--features", "bmi,bp,s5")
    assert message == (f"workbench: error: {model_onnx}: cannot derive a card: --features "
                       "name(s) 3 column(s), the model's column inputs take 10 "
                       f"({ONNX_INPUT} [N, 10])")


def test_a_card_that_does_not_fit_the_graph(owner, model_onnx):
    name = fresh("m")
    card = owner.tmp / "card.json"
    card.write_text(json.dumps({"name": name, "inputs": [{"name": ONNX_INPUT}],
                                "feature_columns": ["bmi", "bp", "s5"],
                                "outputs": [{"name": "variable"}]}))
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--card", str(card))
    assert message == (f"workbench: error: {model_onnx}: the card and the model's graph "
                       f"disagree: input '{ONNX_INPUT}': the card lists 3 column(s), the graph "
                       "takes 10")


def test_a_card_that_is_not_json(owner, model_onnx):
    name = fresh("m")
    card = owner.tmp / "card.json"
    card.write_text("{features: [")
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--card", str(card))
    assert f"{card}: card is not valid JSON" in message


def test_card_and_features_together(owner, model_onnx, tmp_path):
    both = owner.run("publish", "model", str(model_onnx), "--name", "m", "--keyring",
                     str(owner.keyring), "--card", str(tmp_path / "c.json"), "--features", "a")
    assert both.returncode == 2
    assert "argument --features: not allowed with argument --card" in both.stderr


def test_a_missing_data_directory(owner, visits_csv):
    name = fresh("t")
    missing = owner.tmp / "no-data-dir"
    message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect", "mrn",
                                               "--data-dir", str(missing)))
    assert message == f"workbench: error: {missing}: data directory does not exist"
    assert not missing.exists()


@pytest.fixture
def published_model(owner, model_onnx):
    name = fresh("m")
    result = owner.publish("model", model_onnx, name, "--features", ",".join(FEATURES),
                           "--policy", str(owner.policy_file()))
    assert result.returncode == 0, result.stderr
    return name


def test_the_broker_holding_another_key(owner, model_onnx, published_model):
    name = published_model
    resource = f"{name}/file-keyset/main"
    with owner.site.admin() as admin:
        admin.rotate(resource, fresh_key(resource)[1])
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--features", ",".join(FEATURES))
    assert f"the key broker holds another key for {resource} (sha256:" in message
    assert message.endswith("--rotate replaces both with a new key")


def test_a_revoked_resource(owner, model_onnx, published_model):
    name = published_model
    with owner.site.admin() as admin:
        admin.revoke(f"{name}/file-keyset/main")
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--features", ",".join(FEATURES), "--rotate")
    assert message == (f"workbench: error: {name}/file-keyset/main was revoked in the key "
                       f"broker at {owner.site.broker_url}; a revoked key does not come back: "
                       "publish under another name")


def test_another_policy_than_the_registered_one(owner, model_onnx, published_model):
    name = published_model
    other = {**owner.site.policy, "id": "stricter"}
    message = refused(owner, name, "model", str(model_onnx), "--name", name, "--keyring",
                      str(owner.keyring), "--features", ",".join(FEATURES), "--policy",
                      str(owner.policy_file(other)))
    assert message == (f"workbench: error: {name}/file-keyset/main is registered under "
                       f"another policy ('{owner.site.policy['id']}'); publish does not "
                       f"change policies: use `workbench kbs policy set "
                       f"{name}/file-keyset/main`, or leave out --policy")


def test_keys_in_the_broker_the_keyring_lacks(owner, visits_csv):
    name = fresh("t")
    with owner.site.admin() as admin:
        for role in ("clinical", "phi"):
            admin.add_resource(f"{name}/table-key/{role}", os.urandom(32), owner.site.policy,
                               require_approval=False, approval_timeout_s=None)
    message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect",
                                               ",".join(PHI)))
    assert message == (f"workbench: error: the key broker holds {name}/table-key/clinical, but "
                       f"keyring {owner.keyring} has no key for it: publish with the keyring "
                       "that sealed it (or, if no kernel ever received it, remove it with "
                       f"`workbench kbs resource delete {name}/table-key/clinical`)")


@pytest.mark.parametrize("where", ["keyring", "dotdot"])
def test_a_catalog_entry_leading_outside_the_data_directory(owner, visits_csv, where):
    # The catalog is the operator's to edit: an entry naming the owner's keyring made
    # publish rename the sealed table over it (every key lost, exit 0).
    name = fresh("t")
    path = (str(owner.keyring) if where == "keyring"
            else os.path.relpath(owner.keyring, owner.data_dir))
    assert where == "keyring" or path.startswith("..")
    catalog_file = owner.data_dir / "catalog.json"
    original = catalog_file.read_text()
    document = json.loads(original)
    document["datasets"][name] = {"path": path, "description": ""}
    catalog_file.write_text(json.dumps(document))
    keyring = owner.keyring.read_bytes()
    try:
        message = refused(owner, name, *table_args(owner, visits_csv, name, "--protect",
                                                   ",".join(PHI), "--policy",
                                                   str(owner.policy_file())))
    finally:
        catalog_file.write_text(original)
    assert f"{catalog_file}: dataset '{name}': path {path!r}" in message
    assert owner.keyring.read_bytes() == keyring
