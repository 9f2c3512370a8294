"""Resource paths: ``repo/type/tag``, each part a plain name (no dots-only, no slashes)."""

from __future__ import annotations

import re

from workbench.kbs.errors import KbsError
from workbench.protocol.errors import ErrorKind

# The same alphabet as sealed resource names (workbench.sealing.resources).
PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PART_NAMES = ("repository", "type", "tag")


def check_path(path: str) -> str:
    """Return ``path`` if it is a valid ``repo/type/tag``; else KbsError naming the part."""
    if not isinstance(path, str):
        raise KbsError(ErrorKind.INVALID_RESOURCE_PATH, "resource path must be a string")
    parts = path.split("/")
    if len(parts) != len(PART_NAMES):
        raise KbsError(ErrorKind.INVALID_RESOURCE_PATH,
                       f"resource path {path!r} must have the form repository/type/tag")
    for name, part in zip(PART_NAMES, parts, strict=True):
        if not PART.fullmatch(part):
            raise KbsError(ErrorKind.INVALID_RESOURCE_PATH,
                f"resource path {path!r}: {name} {part!r} must be 1-128 letters, digits, "
                "'.', '-' or '_', starting with a letter or digit",
            )
    return path
