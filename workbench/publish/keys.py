"""Fresh key material for a resource, by the resource's type (used when keys rotate)."""

from __future__ import annotations

import os
from collections.abc import Callable

from workbench.sealing.keyring import KIND_AES256, KIND_TINK_KEYSET
from workbench.sealing.resources import FILE_KEYSET_TYPE, TABLE_KEY_TYPE

TABLE_KEY_BYTES = 32


def _tink_keyset() -> bytes:
    from workbench.sealing.files import new_keyset

    return new_keyset()


# resource type -> (keyring kind, a new key): the same rule the broker checks keys by.
NEW_KEYS: dict[str, tuple[str, Callable[[], bytes]]] = {
    TABLE_KEY_TYPE: (KIND_AES256, lambda: os.urandom(TABLE_KEY_BYTES)),
    FILE_KEYSET_TYPE: (KIND_TINK_KEYSET, _tink_keyset),
}


def fresh_key(resource: str) -> tuple[str, bytes]:
    """(keyring kind, material) of a new key for ``resource`` (``repo/type/tag``)."""
    kind, make = NEW_KEYS[resource.split("/")[1]]
    return kind, make()
