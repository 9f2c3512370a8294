"""docs/kbs.md names every setting and every problem type the broker can answer with."""

from __future__ import annotations

from kbs_helpers import ROOT

from workbench.kbs.config import SETTINGS
from workbench.kbs.errors import ERROR_STATUS

DOC = ROOT / "docs" / "kbs.md"


def test_every_setting_is_documented():
    text = DOC.read_text()
    assert [name for name in SETTINGS if f"| `{name}` |" not in text] == []


def test_every_problem_type_is_documented_with_its_status():
    text = DOC.read_text()
    missing = [kind for kind, status in ERROR_STATUS.items()
               if f"| `{kind}` | {status} |" not in text]
    assert missing == []
