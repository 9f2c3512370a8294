"""One error type for everything a user can get wrong, carrying its exit code.

The CLI prints ``workbench: error: <message>`` on one line and exits with ``exit_code``;
library callers catch :class:`WorkbenchError` and read ``str(err)``.
"""

from __future__ import annotations

from pathlib import Path

EXIT_INVALID = 1
EXIT_MALFORMED = 2


class WorkbenchError(Exception):
    """A refusal or a failure the user can act on."""

    exit_code: int = EXIT_INVALID

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(WorkbenchError):
    """Input that is missing, unreadable or not of the expected kind."""

    exit_code = EXIT_MALFORMED


def about(path: str | Path, cause: str) -> str:
    """Format a message that names the file first, as every file error does."""
    return f"{path}: {cause}"
