"""Jupyter Server extension used by the lab extension (see docs/labextension.md)."""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from workbench.labserver.app import WorkbenchLab

    return [{"module": "workbench.labserver", "app": WorkbenchLab}]
