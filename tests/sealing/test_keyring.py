"""The owner's keyring: private by construction, refused when it is not."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workbench.errors import InputError, WorkbenchError
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeyUnavailable


def test_created_owner_only(tmp_path: Path):
    ring = Keyring.create(tmp_path / "k")
    assert stat.S_IMODE(ring.path.stat().st_mode) == 0o600


def test_saved_keys_survive_reopen_and_stay_private(tmp_path: Path):
    ring = Keyring.create(tmp_path / "k")
    key = ring.ensure_aes256("cohort/table-key/phi")
    ring.save()
    again = Keyring.open(tmp_path / "k")
    assert again.get_key("cohort/table-key/phi") == key and len(key) == 32
    assert stat.S_IMODE(again.path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_is_refused(tmp_path: Path, mode: int):
    ring = Keyring.create(tmp_path / "k")
    os.chmod(ring.path, mode)
    with pytest.raises(WorkbenchError) as caught:
        Keyring.open(ring.path)
    assert str(caught.value) == (
        f"{ring.path}: keyring is accessible to group or others (mode {mode:04o}); "
        f"run `chmod 600 {ring.path}`"
    )


def test_existing_file_is_not_overwritten(tmp_path: Path):
    target = tmp_path / "k"
    target.write_text("precious")
    with pytest.raises(InputError, match="already exists; refusing to overwrite a keyring"):
        Keyring.create(target)
    assert target.read_text() == "precious"


def test_missing_and_garbage_keyrings_are_named(tmp_path: Path):
    with pytest.raises(InputError, match=r"keyring not found \(create one with"):
        Keyring.open(tmp_path / "absent")
    garbage = tmp_path / "garbage"
    garbage.write_text("{not json")
    garbage.chmod(0o600)
    with pytest.raises(InputError, match=f"{garbage}: not a workbench keyring"):
        Keyring.open(garbage)


def test_unknown_key_raises_key_unavailable(tmp_path: Path):
    ring = Keyring.create(tmp_path / "k")
    with pytest.raises(KeyUnavailable, match="key 'x/table-key/phi' is not available"):
        ring.get_key("x/table-key/phi")
