"""Names of the key resources a sealed dataset or model needs.

Names follow the key broker's ``repo/type/tag`` form so that a resource registered in the
broker and a key id recorded inside a sealed Parquet footer are the same string.
"""

from __future__ import annotations

import re

TABLE_KEY_TYPE = "table-key"
FILE_KEYSET_TYPE = "file-keyset"
PHI_ROLE = "phi"
CLINICAL_ROLE = "clinical"
FILE_KEYSET_TAG = "main"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """A dataset or model name: letters, digits, dot, dash, underscore; no slashes."""
    if not _NAME.match(name):
        raise ValueError(
            f"invalid resource name {name!r}: use letters, digits, '.', '-' or '_' "
            "(at most 128 characters, starting with a letter or digit)"
        )
    return name


def table_key(dataset: str, role: str) -> str:
    return f"{check_name(dataset)}/{TABLE_KEY_TYPE}/{role}"


def file_keyset(name: str) -> str:
    return f"{check_name(name)}/{FILE_KEYSET_TYPE}/{FILE_KEYSET_TAG}"
