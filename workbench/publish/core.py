"""One publish as one transaction: seal, register, put in place, list; or nothing at all.

The order keeps every intermediate state harmless: the asset is sealed beside its final
name (invisible to kernels, which find files through the catalog), the keys are registered,
the sealed file replaces the old one in one rename, and the catalog entry is written last.
Every step that changed something pushes its undo first; any failure runs them in reverse
and reports, on one line, the failure and what was undone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
from workbench.kbs.adminclient import AdminClient
from workbench.kernel.catalog import Catalog, resources_of
from workbench.publish import broker
from workbench.publish.broker import Release
from workbench.publish.keys import fresh_key
from workbench.publish.kinds import Asset, AssetKind
from workbench.publish.undo import Undo
from workbench.sealing.atomic import atomic_output
from workbench.sealing.keyring import Keyring
from workbench.sealing.resources import check_name

# What happened to the sealed file and to the catalog entry.
WRITTEN, UNCHANGED = "written", "unchanged"
ADDED, UPDATED = "added", "updated"

# Step names passed to ``on_step`` as each change is made (the demo times them).
SEALED, REGISTERED, PLACED, LISTED = "sealed", "registered", "placed", "listed"


@dataclass(frozen=True)
class Target:
    """Where and how to publish: the owner's data directory, keyring and broker."""

    data_dir: Path
    keyring: Path
    admin: AdminClient
    release: Release = field(default_factory=Release)
    # None keeps the catalog entry's description (empty for a new entry).
    description: str | None = None
    rotate: bool = False


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    path: Path
    file: str
    resources: dict[str, str]
    catalog: str

    @property
    def changed(self) -> bool:
        return (self.file != UNCHANGED or self.catalog != UNCHANGED
                or any(a != broker.UNCHANGED for a in self.resources.values()))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path),
                "file": self.file, "resources": self.resources, "catalog": self.catalog,
                "changed": self.changed}


def checked_name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as err:
        raise InputError(str(err)) from None


def _restore_keyring(path: Path, before: bytes) -> bool:
    if path.read_bytes() == before:
        return False
    with atomic_output(path, mode=0o600) as handle:
        handle.write(before)
    return True


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _put_in_place(sealed: Path, final: Path, undo: Undo) -> Path | None:
    """Rename ``sealed`` over ``final``; the old file stays reachable until the publish
    completes (a hard link named like a temporary file), so a failure can bring it back.
    Returns that link, to remove on success."""
    previous = None
    if final.is_dir():  # checked before, but the place may have been taken since
        raise WorkbenchError(about(final, "is a directory, not a sealed file"))
    if final.exists():
        previous = final.with_name(f".{final.name}.{secrets.token_hex(4)}.previous")
        os.link(final, previous)
        undo.push(f"removed {previous.name}", f"remove {previous}", lambda: _remove(previous))
    os.replace(sealed, final)
    if previous is None:
        undo.push(f"removed {final}", f"remove {final}", lambda: _remove(final))
    else:
        undo.push(f"put the previous {final.name} back", f"put the previous {final} back",
                  lambda: os.replace(previous, final))
    return previous


def publish(kind: AssetKind, asset: Asset, target: Target,
            on_step: Callable[[str, str], None] | None = None) -> Outcome:
    """Publish ``asset`` as ``kind``; returns what changed. Raises WorkbenchError (one
    line) after undoing everything this call did when any step fails."""
    step = on_step or (lambda _name, _detail: None)
    name = checked_name(asset.name)
    data_dir = target.data_dir
    if not data_dir.is_dir():
        raise InputError(about(data_dir, "data directory does not exist"))
    catalog = Catalog.load_or_new(data_dir)
    catalog.check_free(kind.catalog_kind, name)
    existing = catalog.find(kind.catalog_kind, name)
    relative = catalog.stored_path(kind.catalog_kind, name) or f"{name}{kind.suffix}"
    final = data_dir / relative
    if not final.parent.is_dir():
        raise InputError(about(final.parent, "directory of the catalog's file does not exist"))
    if final.is_dir():
        raise InputError(about(final, "is a directory, not a sealed file"))
    description = (target.description if target.description is not None
                   else existing.description if existing else "")

    keyring = Keyring.open(target.keyring)
    keyring_before = keyring.path.read_bytes()
    resources = resources_of(kind.catalog_kind, name)
    # Asks the broker about every resource first: unreachable, revoked or holding another
    # key is refused here, before anything is written.
    steps = broker.plan(target.admin, resources, keyring, rotate=target.rotate,
                        release=target.release)
    previous_keys = {r: keyring.get_key(r) for r in resources if r in keyring}
    if target.rotate:
        for resource in resources:
            keyring.replace(resource, *fresh_key(resource))
    unchanged_file = (not target.rotate and final.exists() and asset.same_as(final, keyring))
    entry_same = (existing is not None and existing.description == description
                  and catalog.stored_path(kind.catalog_kind, name) == relative)
    if unchanged_file and entry_same and all(a == broker.UNCHANGED for a in steps.values()):
        return Outcome(kind.word, name, final, UNCHANGED, steps, UNCHANGED)

    undo = Undo()
    undo.push("restored the keyring", f"restore keyring {keyring.path}",
              lambda: _restore_keyring(keyring.path, keyring_before))
    sealed = final.with_name(f".{final.name}.{secrets.token_hex(4)}.publishing")
    previous: Path | None = None
    try:
        if not unchanged_file:
            undo.push("removed the sealed file", f"remove {sealed}", lambda: _remove(sealed))
            asset.seal(sealed, keyring)
            step(SEALED, str(sealed))
        broker.register(target.admin, steps, keyring, previous_keys, target.release, undo)
        step(REGISTERED, ", ".join(steps))
        if not unchanged_file:
            previous = _put_in_place(sealed, final, undo)
            step(PLACED, str(final))
        listed = catalog.put(kind.catalog_kind, name, relative, description)
        if listed:
            catalog.save()
        step(LISTED, str(catalog.path))
    except BaseException as err:
        rollback = undo.run()
        if not isinstance(err, WorkbenchError | OSError):
            raise  # an interruption or a bug: undone, and shown as it is
        cause = str(err) if isinstance(err, WorkbenchError) else about(
            err.filename2 or err.filename or data_dir, err.strerror or str(err))
        raise WorkbenchError(f"publishing {kind.word} '{name}' failed: {cause}; "
                             f"{rollback.describe()}",
                             exit_code=getattr(err, "exit_code", None)) from None
    undo.forget()
    if previous is not None:
        with contextlib.suppress(OSError):
            previous.unlink()
    return Outcome(kind.word, name, final, UNCHANGED if unchanged_file else WRITTEN, steps,
                   (UPDATED if existing else ADDED) if listed else UNCHANGED)
