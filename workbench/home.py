"""Where the workbench keeps local state: ``$WORKBENCH_HOME`` or ``~/.local/share/workbench``."""

from __future__ import annotations

import os
from pathlib import Path


def workbench_home() -> Path:
    configured = os.environ.get("WORKBENCH_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".local" / "share" / "workbench"
