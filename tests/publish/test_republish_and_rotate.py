"""Publishing again: the same content changes nothing; new content is re-sealed under the
same keys; --rotate makes new keys in the keyring and the broker and re-seals."""

from __future__ import annotations

import os

import pytest
from publish_helpers import FEATURES, PHI, diabetes_visits, progression_model

from workbench.errors import WorkbenchError
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import MemoryKeySource
from workbench.sealing.table import open_table


def fingerprints(owner, name: str) -> dict[str, str]:
    return {e.resource: e.fingerprint for e in Keyring.open(owner.keyring).entries()
            if e.resource.split("/")[0] == name}


@pytest.fixture
def table(owner):
    """A first publish of a small table; returns (name, plaintext path, frame)."""
    name = f"visits-{os.urandom(3).hex()}"
    frame = diabetes_visits().iloc[:120]
    source = owner.tmp / "visits.parquet"
    frame.to_parquet(source)
    first = owner.publish("table", source, name, "--protect", ",".join(PHI), "--policy",
                          str(owner.policy_file()))
    assert first.returncode == 0, first.stderr
    return name, source, frame


def test_publishing_the_same_table_again_changes_nothing(owner, table):
    name, source, _frame = table
    before = owner.snapshot(name)
    again = owner.publish("table", source, name, "--protect", ",".join(PHI), "--policy",
                          str(owner.policy_file()))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        f"table '{name}' is already published as {owner.data_dir / (name + '.sealed.parquet')}"
        ": sealed file, keys, broker and catalog unchanged")
    assert owner.snapshot(name) == before


def test_publishing_the_same_model_again_changes_nothing(owner):
    name = f"model-{os.urandom(3).hex()}"
    _model, onnx_bytes = progression_model(diabetes_visits())
    source = owner.tmp / "model.onnx"
    source.write_bytes(onnx_bytes)
    options = ("--features", ",".join(FEATURES), "--policy", str(owner.policy_file()))
    assert owner.publish("model", source, name, *options).returncode == 0
    before = owner.snapshot(name)
    again = owner.publish("model", source, name, *options, "--json")
    assert again.returncode == 0, again.stderr
    assert '"changed": false' in again.stdout
    assert owner.snapshot(name) == before


def test_new_content_is_resealed_under_the_same_keys(owner, table):
    name, source, frame = table
    keys, broker = fingerprints(owner, name), owner.broker_state(name)
    catalog = owner.catalog()
    changed = frame.iloc[:60]
    changed.to_parquet(source)
    result = owner.publish("table", source, name, "--protect", ",".join(PHI))
    assert result.returncode == 0, result.stderr
    assert "sealed file: written" in result.stdout
    assert f"{name}/table-key/phi: unchanged in the key broker" in result.stdout
    assert "catalog entry: unchanged" in result.stdout
    assert fingerprints(owner, name) == keys and owner.broker_state(name) == broker
    assert owner.catalog() == catalog
    reopened = open_table(owner.data_dir / f"{name}.sealed.parquet", Keyring.open(owner.keyring))
    assert len(reopened) == 60


def test_a_new_description_updates_only_the_catalog_entry(owner, table):
    name, source, _frame = table
    broker = owner.broker_state(name)
    result = owner.publish("table", source, name, "--protect", ",".join(PHI),
                           "--description", "first 120 visits")
    assert result.returncode == 0, result.stderr
    assert "sealed file: unchanged" in result.stdout and "catalog entry: updated" in result.stdout
    assert owner.catalog()["datasets"][name]["description"] == "first 120 visits"
    assert owner.broker_state(name) == broker


def test_rotate_makes_new_keys_everywhere_and_reseals(owner, table):
    name, source, frame = table
    sealed = owner.data_dir / f"{name}.sealed.parquet"
    old_keys = {e.resource: e.material for e in Keyring.open(owner.keyring).entries()
                if e.resource.split("/")[0] == name}
    old_prints = fingerprints(owner, name)
    result = owner.publish("table", source, name, "--protect", ",".join(PHI), "--rotate")
    assert result.returncode == 0, result.stderr
    assert f"{name}/table-key/clinical: rotated in the key broker" in result.stdout
    assert "sealed file: written" in result.stdout
    new_prints = fingerprints(owner, name)
    assert set(new_prints) == set(old_prints)
    assert all(new_prints[r] != old_prints[r] for r in new_prints)
    assert owner.broker_state(name) == {r: (2, new_prints[r], "active") for r in new_prints}
    assert len(open_table(sealed, Keyring.open(owner.keyring))) == len(frame)
    with pytest.raises(WorkbenchError, match=r"key .*table-key/clinical. does not open this data"):
        open_table(sealed, MemoryKeySource(old_keys))
    # Rotated once: the next publish without --rotate is a no-op again.
    again = owner.publish("table", source, name, "--protect", ",".join(PHI))
    assert "is already published" in again.stdout
