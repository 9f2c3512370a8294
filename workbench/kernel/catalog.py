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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import InputError, WorkbenchError, about
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
# Kinds sealed as tables (two keys: identifiers and the rest); the others are sealed files.
TABLE_KINDS = frozenset({"dataset", "images"})


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    path: Path
    description: str

    @property
    def resources(self) -> tuple[str, ...]:
        if self.kind in TABLE_KINDS:
            return (table_key(self.name, CLINICAL_ROLE), table_key(self.name, PHI_ROLE))
        return (file_keyset(self.name),)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path),
                "description": self.description, "resources": list(self.resources)}


class Catalog:
    def __init__(self, path: Path, entries: dict[str, dict[str, Entry]]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def load(cls, data_dir: Path) -> Catalog:
        path = data_dir / CATALOG_NAME
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise InputError(about(path, "no data catalog here: the data owner publishes one "
                                         "next to the sealed files (set data_dir in "
                                         "$WORKBENCH_HOME/kernel.toml or "
                                         "WORKBENCH_DATA_DIR)")) from None
        except (OSError, ValueError) as err:
            raise InputError(about(path, f"not a readable catalog ({err})")) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InputError(about(path, f"not a workbench catalog (format is not {FORMAT})"))
        entries: dict[str, dict[str, Entry]] = {}
        for section, kind in KINDS.items():
            items = document.get(section, {})
            if not isinstance(items, dict):
                raise InputError(about(path, f"'{section}' must be an object"))
            entries[kind] = {}
            for name, item in items.items():
                try:
                    check_name(name)
                    relative = item["path"]
                    description = str(item.get("description", ""))
                except (ValueError, KeyError, TypeError) as err:
                    raise InputError(about(path, f"{kind} {name!r}: {err}")) from None
                entries[kind][name] = Entry(kind, name, (data_dir / relative), description)
        return cls(path, entries)

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries.get(kind, {}))

    def get(self, kind: str, name: str) -> Entry:
        found = self._entries.get(kind, {}).get(name)
        if found is None:
            available = ", ".join(self.names(kind)) or "none"
            raise WorkbenchError(f"no {kind} named '{name}' in {self.path} "
                                 f"(available: {available})")
        return found

    def entries(self) -> list[Entry]:
        return [e for kind in KINDS.values() for e in self._entries.get(kind, {}).values()]

    def resources(self) -> list[str]:
        return [r for e in self.entries() for r in e.resources]


def write_catalog(data_dir: Path, *, datasets: dict[str, dict[str, str]],
                  models: dict[str, dict[str, str]],
                  images: dict[str, dict[str, str]] | None = None) -> Path:
    """Write ``catalog.json`` (the data owner's side; used by the demo and tests)."""
    path = data_dir / CATALOG_NAME
    document = {"format": FORMAT, "datasets": datasets, "models": models,
                "images": images or {}}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
