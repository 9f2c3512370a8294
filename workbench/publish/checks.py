"""Is this file sealed for this name? Read from what sealing leaves in plaintext, no key."""

from __future__ import annotations

from pathlib import Path

from workbench.errors import InputError, WorkbenchError, about
from workbench.kernel.catalog import TABLE_KINDS
from workbench.sealing.files import read_header
from workbench.sealing.resources import CLINICAL_ROLE, table_key
from workbench.sealing.table import footer_key_id


def _table(path: Path, kind: str, name: str) -> None:
    expected = table_key(name, CLINICAL_ROLE)
    found = footer_key_id(path)
    if found != expected:
        raise WorkbenchError(about(path, f"is sealed under {found}, not {expected}: it is not "
                                         f"the {kind} '{name}'"))


def _file(path: Path, kind: str, name: str) -> None:
    with path.open("rb") as handle:
        header, _ = read_header(handle, path)
    if header.name != name:
        raise WorkbenchError(about(path, f"was sealed as '{header.name}', not '{name}': it is "
                                         f"not the {kind} '{name}'"))


def check_sealed_for(kind: str, name: str, path: Path) -> None:
    """Refuse ``path`` unless it exists and was sealed as ``kind`` ``name``."""
    if not path.is_file():
        raise InputError(about(path, "file not found"))
    (_table if kind in TABLE_KINDS else _file)(path, kind, name)
