"""The walkthroughs ``workbench demo`` can run, as a table: notebook, extra hospital setup,
and how its summary cell reads in the headless report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.demo.environment import Hospital


@dataclass(frozen=True)
class Walkthrough:
    name: str
    notebook: str
    title: str
    # What the hospital publishes beyond the cohort and the risk model, if anything.
    prepare: Callable[[Hospital], Any] | None
    summary_lines: Callable[[dict[str, Any]], list[str]]

    def path(self) -> Path:
        import workbench

        return Path(workbench.__file__).resolve().parent.parent / "notebooks" / self.notebook


def _healthcare_lines(s: dict[str, Any]) -> list[str]:
    rules = ", ".join(s.get("failed_rules") or []) or "none"
    shown = "yes" if s.get("refusal_shown") else "NO"
    return [f"runtime: {s.get('runtime')}",
            f"patients scored: {s.get('patients_scored')}",
            f"AUC against the recorded diagnosis: {s.get('auc'):.4f}",
            f"refusal shown: {shown} (modified kernel refused; failed rule(s): {rules})",
            f"keys released to the kernel: {', '.join(s.get('released') or [])}"]


def _imaging_lines(s: dict[str, Any]) -> list[str]:
    opened = ", ".join(s.get("identifier_columns_opened") or []) or "none"
    return [f"runtime: {s.get('runtime')}",
            f"slices scored: {s.get('slices_scored')} ({'x'.join(map(str, s.get('shape', [])))})",
            "body area (cm²): " + ", ".join(f"{v:g}" for v in s.get("body_cm2", [])),
            "bone fraction: " + ", ".join(f"{v:g}" for v in s.get("bone_fraction", [])),
            f"identifier columns opened: {opened}",
            f"keys released to the kernel: {', '.join(s.get('released') or [])}"]


def _publish_imaging(site: Hospital) -> Any:
    from workbench.demo.imaging import publish_imaging

    return publish_imaging(site)


WALKTHROUGHS: dict[str, Walkthrough] = {w.name: w for w in (
    Walkthrough("healthcare", "healthcare-demo.ipynb", "the healthcare walkthrough", None,
                _healthcare_lines),
    Walkthrough("imaging", "imaging-demo.ipynb", "the imaging walkthrough",
                _publish_imaging, _imaging_lines),
)}
DEFAULT = "healthcare"
