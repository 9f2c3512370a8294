"""A key source scoped to one catalog entry: it asks the kernel state only for that entry's keys.

Sealed files name the keys they need (Parquet footers carry master key ids). A file swapped
for another dataset's would make pyarrow ask for ``other/table-key/...``; this source
refuses any resource the entry does not own, so a swapped file is named as such and never
turns into a request for someone else's key.
"""

from __future__ import annotations

from workbench.kernel.catalog import Entry
from workbench.kernel.state import KernelState
from workbench.sealing.keys import KeyUnavailable


class EntryKeySource:
    def __init__(self, state: KernelState, entry: Entry, *, approve: bool) -> None:
        self._state = state
        self._entry = entry
        self._approve = approve

    def get_key(self, resource: str) -> bytes:
        if resource not in self._entry.resources:
            owned = " and ".join(self._entry.resources)
            raise KeyUnavailable(
                resource, f"the file asks for it, but {self._entry.kind} '{self._entry.name}' "
                          f"is sealed under {owned}: {self._entry.path.name} is not the file "
                          "the catalog says (swapped or mislabelled)")
        return self._state.release(resource, kind=self._entry.kind, name=self._entry.name,
                                   approve=self._approve)
