"""`workbench catalog list|add|remove`: the owner's edits of catalog.json, each checked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from publish_helpers import PHI, diabetes_visits, one_line_error, progression_model

from workbench.errors import WorkbenchError
from workbench.kernel.catalog import CATALOG_NAME, Catalog
from workbench.sealing.files import seal_file
from workbench.sealing.keyring import Keyring
from workbench.sealing.table import seal_table


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding a sealed table 'ward' and a sealed model 'los' (no catalog)."""
    directory = tmp_path / "data"
    directory.mkdir()
    ring = Keyring.create(tmp_path / "owner.keyring")
    plain = tmp_path / "ward.parquet"
    diabetes_visits().iloc[:20].to_parquet(plain)
    seal_table(plain, directory / "ward.sealed.parquet", protect=PHI, keyring=ring,
               dataset="ward")
    model = tmp_path / "los.onnx"
    model.write_bytes(progression_model(diabetes_visits())[1])
    seal_file(model, directory / "los.sealed", name="los", keyring=ring)
    return directory


def catalog(workbench_cli: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([workbench_cli, "catalog", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)


def test_add_then_list_shows_kind_name_file_resources_description(workbench_cli, data_dir):
    added = catalog(workbench_cli, data_dir, "add", "dataset", "ward",
                    str(data_dir / "ward.sealed.parquet"), "--description", "ward 7 visits")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == (f"added dataset 'ward' (ward.sealed.parquet) in "
                                    f"{data_dir / CATALOG_NAME}")
    assert catalog(workbench_cli, data_dir, "add", "model", "los",
                   str(data_dir / "los.sealed")).returncode == 0
    listed = catalog(workbench_cli, data_dir, "list")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "FILE", "RESOURCES", "DESCRIPTION"]
    assert lines[1].split() == ["dataset", "ward", "ward.sealed.parquet",
                                "ward/table-key/clinical,ward/table-key/phi", "ward", "7",
                                "visits"]
    assert lines[2].split() == ["model", "los", "los.sealed", "los/file-keyset/main"]
    as_json = json.loads(catalog(workbench_cli, data_dir, "list", "--json").stdout)
    assert [(e["kind"], e["name"], e["file"], e["present"]) for e in as_json] == \
        [("dataset", "ward", "ward.sealed.parquet", True), ("model", "los", "los.sealed", True)]
    document = json.loads((data_dir / CATALOG_NAME).read_text())
    assert document == {"format": "workbench-catalog/1",
                        "datasets": {"ward": {"path": "ward.sealed.parquet",
                                              "description": "ward 7 visits"}},
                        "models": {"los": {"path": "los.sealed", "description": ""}},
                        "images": {}}
    # Every write replaced the file whole: no temporary file is left beside it.
    assert sorted(p.name for p in data_dir.iterdir()) == [CATALOG_NAME, "los.sealed",
                                                           "ward.sealed.parquet"]


def test_adding_again_is_unchanged_and_a_description_updates(workbench_cli, data_dir):
    file = str(data_dir / "ward.sealed.parquet")
    catalog(workbench_cli, data_dir, "add", "dataset", "ward", file)
    again = catalog(workbench_cli, data_dir, "add", "dataset", "ward", file)
    assert "is already in" in again.stdout and "unchanged" in again.stdout
    described = catalog(workbench_cli, data_dir, "add", "dataset", "ward", file,
                        "--description", "now described")
    assert described.stdout.startswith("updated dataset 'ward'")


@pytest.mark.parametrize(("args", "expected"), [
    (("dataset", "ward", "{d}/missing.sealed.parquet"), "{d}/missing.sealed.parquet: file not "
                                                        "found"),
    (("dataset", "other", "{d}/ward.sealed.parquet"),
     "{d}/ward.sealed.parquet: is sealed under ward/table-key/clinical, not "
     "other/table-key/clinical: it is not the dataset 'other'"),
    (("model", "risk", "{d}/los.sealed"),
     "{d}/los.sealed: was sealed as 'los', not 'risk': it is not the model 'risk'"),
    (("dataset", "los", "{d}/los.sealed"), "{d}/los.sealed: is a sealed file, not a sealed "
                                           "table"),
    (("model", "ward", "{d}/ward.sealed.parquet"), "{d}/ward.sealed.parquet: is not a sealed "
                                                   "file"),
    (("dataset", "../ward", "{d}/ward.sealed.parquet"), "invalid resource name '../ward'"),
    (("dataset", "plain", "{d}/plain.parquet"), "{d}/plain.parquet: is a Parquet table, not a "
                                               "sealed table"),
])
def test_add_refuses_what_is_not_sealed_for_that_name(workbench_cli, data_dir, args, expected):
    diabetes_visits().iloc[:5].to_parquet(data_dir / "plain.parquet")
    result = catalog(workbench_cli, data_dir, "add", *(a.format(d=data_dir) for a in args))
    assert expected.format(d=data_dir) in one_line_error(result)
    assert not (data_dir / CATALOG_NAME).exists()


def test_add_refuses_a_file_outside_the_data_directory(workbench_cli, data_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.link(data_dir / "los.sealed", outside / "los.sealed")
    message = one_line_error(catalog(workbench_cli, data_dir, "add", "model", "los",
                                     str(outside / "los.sealed")))
    assert f"{outside / 'los.sealed'}: is not inside the data directory {data_dir}" in message


def test_a_name_whose_keys_another_kind_uses_is_refused(workbench_cli, data_dir):
    catalog(workbench_cli, data_dir, "add", "dataset", "ward",
            str(data_dir / "ward.sealed.parquet"))
    message = one_line_error(catalog(workbench_cli, data_dir, "add", "images", "ward",
                                     str(data_dir / "ward.sealed.parquet")))
    assert "the dataset 'ward' already uses the keys ward/table-key/clinical, " \
           "ward/table-key/phi; choose another name" in message


def test_remove_keeps_the_file_unless_asked(workbench_cli, data_dir):
    for kind, name, file in (("dataset", "ward", "ward.sealed.parquet"),
                             ("model", "los", "los.sealed")):
        catalog(workbench_cli, data_dir, "add", kind, name, str(data_dir / file))
    kept = catalog(workbench_cli, data_dir, "remove", "dataset", "ward")
    assert kept.returncode == 0, kept.stderr
    assert f"(the file {data_dir / 'ward.sealed.parquet'} stays)" in kept.stdout
    assert "its keys stay in the key broker" in kept.stdout
    assert (data_dir / "ward.sealed.parquet").exists()
    deleted = catalog(workbench_cli, data_dir, "remove", "model", "los", "--delete-file")
    assert f"and deleted {data_dir / 'los.sealed'}" in deleted.stdout
    assert not (data_dir / "los.sealed").exists()
    assert catalog(workbench_cli, data_dir, "list").stdout.strip() == \
        f"{data_dir / CATALOG_NAME}: no entries"
    unknown = one_line_error(catalog(workbench_cli, data_dir, "remove", "model", "los"))
    assert f"no model named 'los' in {data_dir / CATALOG_NAME} (available: none)" in unknown


def test_list_marks_a_missing_file(workbench_cli, data_dir):
    catalog(workbench_cli, data_dir, "add", "model", "los", str(data_dir / "los.sealed"))
    (data_dir / "los.sealed").unlink()
    assert "los.sealed (missing)" in catalog(workbench_cli, data_dir, "list").stdout


def test_the_data_directory_defaults_to_the_kernels(workbench_cli, data_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(data_dir))
    result = subprocess.run([workbench_cli, "catalog", "add", "model", "los",
                             str(data_dir / "los.sealed")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert (data_dir / CATALOG_NAME).exists()


def test_a_catalog_changed_since_it_was_read_is_not_overwritten(data_dir):
    first = Catalog.load_or_new(data_dir)
    second = Catalog.load_or_new(data_dir)
    first.put("model", "los", "los.sealed", "")
    first.save()
    second.put("dataset", "ward", "ward.sealed.parquet", "")
    with pytest.raises(WorkbenchError, match="the catalog changed while this edit was being "
                                             r"made \(another publish\?\); run it again"):
        second.save()
    assert Catalog.load(data_dir).names("dataset") == []
    assert Catalog.load(data_dir).names("model") == ["los"]


@pytest.mark.parametrize("path, reason", [
    (None, "'path' must be a non-empty string"),
    (5, "'path' must be a non-empty string"),
    (["a"], "'path' must be a non-empty string"),
    ("", "'path' must be a non-empty string"),
    ("/etc/hostname", "path '/etc/hostname' must be relative to the data directory, "
                      "without '..'"),
    ("../owner.keyring", "path '../owner.keyring' must be relative to the data directory, "
                         "without '..'"),
])
def test_a_catalog_entry_that_is_not_a_file_in_the_data_directory_is_refused(
        data_dir, path, reason):
    (data_dir / CATALOG_NAME).write_text(json.dumps(
        {"format": "workbench-catalog/1", "datasets": {"ward": {"path": path}}}))
    with pytest.raises(WorkbenchError) as info:
        Catalog.load(data_dir)
    assert str(info.value) == f"{data_dir / CATALOG_NAME}: dataset 'ward': {reason}"


def test_remove_does_not_delete_through_a_link_out_of_the_data_directory(workbench_cli,
                                                                          data_dir):
    # The operator replaces the listed file with a link to the owner's keyring.
    catalog(workbench_cli, data_dir, "add", "model", "los", str(data_dir / "los.sealed"))
    keyring = data_dir.parent / "owner.keyring"
    (data_dir / "los.sealed").unlink()
    (data_dir / "los.sealed").symlink_to(keyring)
    refused = one_line_error(catalog(workbench_cli, data_dir, "remove", "model", "los",
                                     "--delete-file"))
    assert f"model 'los': path 'los.sealed' leads outside the data directory {data_dir}" \
        in refused
    assert keyring.exists()
