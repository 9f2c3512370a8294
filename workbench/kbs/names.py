"""Names the data owner gives analysts and analyst groups: one alphabet, the one resource
path parts use, because a name travels as a segment of an admin route
(``/admin/v0/analysts/{name}/revoke``) and is printed by every command. A name with ``/``,
``?``, ``#`` or ``..`` in it could be registered but would never reach its revoke route.
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.kbs.errors import KbsError
from workbench.kbs.paths import PART
from workbench.kbs.release_rules import MAX_NAMES
from workbench.protocol.errors import ErrorKind

RULE = "1-128 letters, digits, '.', '-' or '_', starting with a letter or digit"


def check_plain_names(values: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """``values`` without repeats if each is a plain name; else MalformedRequest naming the
    field, the name and the rule."""
    if values is None:
        return ()
    if len(values) > MAX_NAMES:
        raise KbsError(ErrorKind.MALFORMED_REQUEST, f"{what}: at most {MAX_NAMES} names")
    for value in values:
        if not isinstance(value, str) or not PART.fullmatch(value):
            raise KbsError(ErrorKind.MALFORMED_REQUEST,
                           f"{what}: {value!r} is not a plain name: a name must be {RULE}")
    return tuple(dict.fromkeys(values))


def check_plain_name(value: str, what: str) -> str:
    [name] = check_plain_names([value], what)
    return name
