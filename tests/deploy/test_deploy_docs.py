"""docs/deploy.md names every setting the deployment configs read, and every file it
tells the reader to use exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"workbench_doc_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("config", "tables"), [
    ("deploy/jupyterhub/jupyterhub_config.py", ("SETTINGS", "FORWARDED")),
    ("deploy/kernel-gateway/kernel_gateway_config.py", ("SETTINGS", "KERNEL_ENVIRONMENT")),
])
def test_every_setting_is_documented(config, tables):
    text = DOC.read_text()
    module = _load(ROOT / config)
    for table in tables:
        for name in getattr(module, table):
            assert f"`{name}`" in text or name in text, f"{name} ({config}) not in {DOC.name}"


def test_every_deploy_path_named_exists():
    for path in set(re.findall(r"`(deploy/[^`\s]+)`", DOC.read_text())):
        assert (ROOT / path).exists(), path
