"""A table to publish: read once, its protected columns checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from workbench.errors import InputError, WorkbenchError, about
from workbench.sealing.keyring import Keyring
from workbench.sealing.keys import KeyUnavailable, MemoryKeySource
from workbench.sealing.resources import CLINICAL_ROLE, table_key
from workbench.sealing.table import (
    encryption_configuration,
    read_plain_table,
    read_sealed_table,
    seal_arrow_table,
)


@dataclass(frozen=True)
class TableAsset:
    name: str
    table: pa.Table
    protect: tuple[str, ...]

    @classmethod
    def read(cls, source: str | Path, name: str, protect: Sequence[str]) -> TableAsset:
        """Load ``source`` (Parquet or CSV) and refuse protected columns it lacks."""
        source = Path(source)
        if not source.exists():
            raise InputError(about(source, "file not found"))
        table = read_plain_table(source)
        encryption_configuration(name, table.column_names, protect)
        return cls(name, table, tuple(protect))

    def seal(self, out: Path, keyring: Keyring) -> None:
        seal_arrow_table(self.table, out, protect=self.protect, keyring=keyring,
                         dataset=self.name)

    def same_as(self, sealed: Path, keyring: Keyring) -> bool:
        """Whether ``sealed`` already holds this table, protected the same way.

        The clinical key alone must open exactly the unprotected columns: that is what
        an analyst given only that key could read."""
        try:
            if not read_sealed_table(sealed, keyring).equals(self.table):
                return False
            clinical = table_key(self.name, CLINICAL_ROLE)
            only_clinical = MemoryKeySource({clinical: keyring.get_key(clinical)})
            opened = [c for c in self.table.column_names if c not in self.protect]
            read_sealed_table(sealed, only_clinical, columns=opened)
        except (WorkbenchError, KeyUnavailable):
            return False
        for column in self.protect:
            try:
                read_sealed_table(sealed, only_clinical, columns=[column])
            except WorkbenchError:
                continue
            return False
        return True
