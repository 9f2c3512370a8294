"""The data owner's local keyring: a JSON file of key material, readable by its owner only.

It is the owner's side of sealing (the kernel never sees it): ``seal`` adds keys for new
datasets and models, ``unseal`` reads them, and ``kbs resource add`` registers them with
the broker. The file is created 0600 and refused if group or others may read it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from workbench.errors import InputError, WorkbenchError, about
from workbench.sealing.atomic import atomic_output
from workbench.sealing.keys import KeyUnavailable, fingerprint

FORMAT = "workbench-keyring/1"
KIND_AES256 = "aes256"
KIND_TINK_KEYSET = "tink-keyset"


@dataclass(frozen=True)
class KeyEntry:
    resource: str
    kind: str
    created: str
    material: bytes

    @property
    def fingerprint(self) -> str:
        """Short SHA-256 of the material: lets people compare keys without seeing them."""
        return fingerprint(self.material)


class Keyring:
    """A keyring file. Implements the ``KeySource`` protocol."""

    def __init__(self, path: Path, entries: dict[str, KeyEntry]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def create(cls, path: str | Path) -> Keyring:
        target = Path(path)
        if target.exists():
            raise InputError(about(target, "already exists; refusing to overwrite a keyring"))
        if not target.parent.is_dir():
            raise InputError(about(target, f"directory {target.parent} does not exist"))
        ring = cls(target, {})
        ring.save()
        return ring

    @classmethod
    def open(cls, path: str | Path) -> Keyring:
        target = Path(path)
        try:
            info = target.stat()
        except FileNotFoundError:
            raise InputError(
                about(target, "keyring not found (create one with `workbench keyring new`)")
            ) from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WorkbenchError(
                about(
                    target,
                    f"keyring is accessible to group or others (mode "
                    f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {target}`",
                )
            )
        try:
            document = json.loads(target.read_bytes())
            if document.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            entries = {
                name: KeyEntry(
                    resource=name,
                    kind=item["kind"],
                    created=item["created"],
                    material=base64.b64decode(item["material"], validate=True),
                )
                for name, item in document["keys"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(about(target, f"not a workbench keyring ({err})")) from None
        return cls(target, entries)

    def save(self) -> None:
        document = {
            "format": FORMAT,
            "keys": {
                e.resource: {
                    "kind": e.kind,
                    "created": e.created,
                    "material": base64.b64encode(e.material).decode(),
                }
                for e in self._entries.values()
            },
        }
        with atomic_output(self.path, mode=0o600) as handle:
            handle.write(json.dumps(document, indent=2).encode())

    def entries(self) -> list[KeyEntry]:
        return sorted(self._entries.values(), key=lambda e: e.resource)

    def __contains__(self, resource: str) -> bool:
        return resource in self._entries

    def get_key(self, resource: str) -> bytes:
        try:
            return self._entries[resource].material
        except KeyError:
            raise KeyUnavailable(resource, f"not in keyring {self.path}") from None

    def add(self, resource: str, kind: str, material: bytes) -> KeyEntry:
        if resource in self._entries:
            raise WorkbenchError(f"key '{resource}' already exists in keyring {self.path}")
        entry = KeyEntry(resource, kind, datetime.now(UTC).isoformat(timespec="seconds"), material)
        self._entries[resource] = entry
        return entry

    def replace(self, resource: str, kind: str, material: bytes) -> KeyEntry:
        """Put fresh material under ``resource`` (key rotation); the old key is gone once
        the keyring is saved, so whoever rotates re-seals everything it protected first."""
        entry = KeyEntry(resource, kind, datetime.now(UTC).isoformat(timespec="seconds"), material)
        self._entries[resource] = entry
        return entry

    def ensure_aes256(self, resource: str) -> bytes:
        """Return the key, creating a fresh random one if the keyring lacks it."""
        if resource not in self._entries:
            self.add(resource, KIND_AES256, os.urandom(32))
        return self._entries[resource].material
