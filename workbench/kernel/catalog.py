"""The data catalog: which sealed datasets and models a kernel can open, and where they are.

``<data_dir>/catalog.json``, written by the data owner next to the sealed files::

    {"format": "workbench-catalog/1",
     "datasets": {"cohort": {"path": "cohort.sealed.parquet", "description": "..."}},
     "models": {"risk-model": {"path": "risk-model.sealed", "description": "..."}},
     "images": {"ct-slices": {"path": "ct-slices.sealed.parquet", "description": "..."}}}

The catalog is not trusted for anything but finding files: a name maps to its broker
resources by the fixed naming rule (``<name>/table-key/...`` for tables and image sets,
``<name>/file-keyset/main`` for models),
and a file that is not sealed for that name is refused when opened.

The data owner edits it with ``workbench publish`` and ``workbench catalog add|remove``
(:meth:`Catalog.put`, :meth:`Catalog.remove`, :meth:`Catalog.save`): every write replaces
the file whole, and refuses when someone else changed it since it was read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
from workbench.sealing.atomic import atomic_output
from workbench.sealing.resources import (
    CLINICAL_ROLE,
    PHI_ROLE,
    check_name,
    file_keyset,
    table_key,
)

CATALOG_NAME = "catalog.json"
FORMAT = "workbench-catalog/1"
KINDS = {"datasets": "dataset", "models": "model", "images": "images"}
SECTIONS = {kind: section for section, kind in KINDS.items()}
# Kinds sealed as tables (two keys: identifiers and the rest); the others are sealed files.
TABLE_KINDS = frozenset({"dataset", "images"})


def resources_of(kind: str, name: str) -> tuple[str, ...]:
    """The broker resources an entry of ``kind`` named ``name`` is sealed under."""
    if kind in TABLE_KINDS:
        return (table_key(name, CLINICAL_ROLE), table_key(name, PHI_ROLE))
    return (file_keyset(name),)


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    path: Path
    description: str

    @property
    def resources(self) -> tuple[str, ...]:
        return resources_of(self.kind, self.name)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path),
                "description": self.description, "resources": list(self.resources)}


def _empty_document() -> dict[str, Any]:
    return {"format": FORMAT, **{section: {} for section in KINDS}}


def _entries(document: Any, data_dir: Path, path: Path) -> dict[str, dict[str, Entry]]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(about(path, f"not a workbench catalog (format is not {FORMAT})"))
    entries: dict[str, dict[str, Entry]] = {}
    base = data_dir.resolve()
    for section, kind in KINDS.items():
        items = document.get(section, {})
        if not isinstance(items, dict):
            raise InputError(about(path, f"'{section}' must be an object"))
        entries[kind] = {}
        for name, item in items.items():
            try:
                check_name(name)
                file = _inside(data_dir, base, item["path"])
                description = str(item.get("description", ""))
            except (ValueError, KeyError, TypeError) as err:
                raise InputError(about(path, f"{kind} {name!r}: {err}")) from None
            entries[kind][name] = Entry(kind, name, file, description)
    return entries


def _inside(data_dir: Path, base: Path, relative: Any) -> Path:
    """The file ``relative`` names in ``data_dir`` (resolved: ``base``). The catalog is
    the operator's to edit: a path leading elsewhere (absolute, through '..' or a symbolic
    link) would have the owner's ``publish`` write, or ``catalog remove --delete-file``
    delete, any file."""
    if not isinstance(relative, str) or not relative:
        raise ValueError("'path' must be a non-empty string")
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise ValueError(f"path {relative!r} must be relative to the data directory, "
                         "without '..'")
    file = data_dir / candidate
    if not file.resolve().is_relative_to(base):
        raise ValueError(f"path {relative!r} leads outside the data directory "
                         f"{data_dir} (through a symbolic link)")
    return file


class Catalog:
    def __init__(self, path: Path, entries: dict[str, dict[str, Entry]], *,
                 document: dict[str, Any] | None = None, loaded: bytes | None = None) -> None:
        self.path = path
        self._entries = entries
        # The JSON as read (edited in place, so fields we do not know survive a save) and
        # its bytes (None: there was no file), to notice a change by someone else.
        self._document = document if document is not None else _empty_document()
        self._loaded = loaded

    @classmethod
    def load(cls, data_dir: Path) -> Catalog:
        path = data_dir / CATALOG_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InputError(about(path, "no data catalog here: the data owner publishes one "
                                         "next to the sealed files (set data_dir in "
                                         "$WORKBENCH_HOME/kernel.toml or "
                                         "WORKBENCH_DATA_DIR)")) from None
        except OSError as err:
            raise InputError(about(path, f"not a readable catalog ({err})")) from None
        return cls._parse(data_dir, path, raw)

    @classmethod
    def load_or_new(cls, data_dir: Path) -> Catalog:
        """The catalog of ``data_dir``, or an empty one if the owner has not written it yet."""
        path = data_dir / CATALOG_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path, {kind: {} for kind in KINDS.values()})
        except OSError as err:
            raise InputError(about(path, f"not a readable catalog ({err})")) from None
        return cls._parse(data_dir, path, raw)

    @classmethod
    def _parse(cls, data_dir: Path, path: Path, raw: bytes) -> Catalog:
        try:
            document = json.loads(raw)
        except ValueError as err:
            raise InputError(about(path, f"not a readable catalog ({err})")) from None
        entries = _entries(document, data_dir, path)
        for section in KINDS:
            document.setdefault(section, {})
        return cls(path, entries, document=document, loaded=raw)

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries.get(kind, {}))

    def find(self, kind: str, name: str) -> Entry | None:
        return self._entries.get(kind, {}).get(name)

    def get(self, kind: str, name: str) -> Entry:
        found = self.find(kind, name)
        if found is None:
            available = ", ".join(self.names(kind)) or "none"
            raise WorkbenchError(f"no {kind} named '{name}' in {self.path} "
                                 f"(available: {available})")
        return found

    def stored_path(self, kind: str, name: str) -> str | None:
        """The entry's path as written in the file (relative to the data directory)."""
        item = self._document[SECTIONS[kind]].get(name)
        return None if item is None else str(item["path"])

    def entries(self) -> list[Entry]:
        return [e for kind in KINDS.values() for e in self._entries.get(kind, {}).values()]

    def resources(self) -> list[str]:
        return [r for e in self.entries() for r in e.resources]

    # -- the data owner's edits -------------------------------------------------------------

    def check_free(self, kind: str, name: str) -> None:
        """Refuse a name whose keys another entry already uses (a dataset and an image set
        of one name would share ``<name>/table-key/...``)."""
        wanted = set(resources_of(kind, name))
        for entry in self.entries():
            if entry.kind != kind and wanted & set(entry.resources):
                raise WorkbenchError(f"{self.path}: the {entry.kind} '{name}' already uses the "
                                     f"keys {', '.join(sorted(wanted & set(entry.resources)))}"
                                     f"; choose another name")

    def put(self, kind: str, name: str, relative: str, description: str) -> bool:
        """Add or replace an entry; False when it was already exactly so."""
        check_name(name)
        self.check_free(kind, name)
        item = {"path": relative, "description": description}
        section = self._document[SECTIONS[kind]]
        if section.get(name) == item:
            return False
        try:
            file = _inside(self.path.parent, self.path.parent.resolve(), relative)
        except ValueError as err:
            raise InputError(about(self.path, f"{kind} {name!r}: {err}")) from None
        section[name] = item
        self._entries[kind][name] = Entry(kind, name, file, description)
        return True

    def remove(self, kind: str, name: str) -> Entry:
        entry = self.get(kind, name)
        del self._document[SECTIONS[kind]][name]
        del self._entries[kind][name]
        return entry

    def save(self) -> Path:
        """Write the catalog whole (readers see the old or the new file, never a mix),
        unless it changed on disk since it was read: two owners' edits must not lose one."""
        try:
            current: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            current = None
        except OSError as err:
            raise WorkbenchError(about(self.path, f"cannot read ({err.strerror or err})")) \
                from None
        if current != self._loaded:
            raise WorkbenchError(about(self.path, "the catalog changed while this edit was "
                                                  "being made (another publish?); run it again"))
        text = (json.dumps(self._document, indent=2) + "\n").encode()
        with atomic_output(self.path, mode=0o644) as handle:
            handle.write(text)
        self._loaded = text
        return self.path


def write_catalog(data_dir: Path, *, datasets: dict[str, dict[str, str]],
                  models: dict[str, dict[str, str]],
                  images: dict[str, dict[str, str]] | None = None) -> Path:
    """Write ``catalog.json`` whole (the data owner's side; used by tests)."""
    path = data_dir / CATALOG_NAME
    document = {"format": FORMAT, "datasets": datasets, "models": models,
                "images": images or {}}
    with atomic_output(path, mode=0o644) as handle:
        handle.write((json.dumps(document, indent=2) + "\n").encode())
    return path
