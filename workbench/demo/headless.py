"""``workbench demo --headless``: the hospital's setup, then the walkthrough run by nbclient.

The notebook is executed as committed (outputs are regenerated, never trusted) on a real
Confidential Python kernel, with non-interactive approval; the summary comes from the
notebook's own ``summary`` cell and from the broker's audit log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workbench.demo.environment import KERNEL_NAME, Hospital, hospital

NOTEBOOK = "healthcare-demo.ipynb"
CELL_TIMEOUT_S = 600


def notebook_path() -> Path:
    import workbench

    return Path(workbench.__file__).resolve().parent.parent / "notebooks" / NOTEBOOK


def kernel_search_path() -> dict[str, str]:
    """JUPYTER_PATH naming the source tree's kernelspec when it is not installed."""
    import os

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        return {}
    except NoSuchKernel:
        root = notebook_path().parent.parent
        if not (root / "kernels" / KERNEL_NAME / "kernel.json").is_file():
            raise
        existing = os.environ.get("JUPYTER_PATH")
        return {"JUPYTER_PATH": os.pathsep.join(p for p in (str(root), existing) if p)}


@dataclass
class HeadlessReport:
    workdir: Path
    steps: list[tuple[str, float]] = field(default_factory=list)
    cells_run: int = 0
    cells_total: int = 0
    failed_step: str = ""
    failure: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failure and self.cells_run == self.cells_total and bool(self.summary)

    def lines(self) -> list[str]:
        out = [f"workbench demo --headless: the healthcare walkthrough ({NOTEBOOK}), "
               f"working directory {self.workdir}"]
        out += [f"  {name:<62} {seconds * 1000:9.1f} ms" for name, seconds in self.steps]
        out.append(f"  cells run: {self.cells_run} of {self.cells_total}")
        if self.failure:
            out.append(f"  FAILED at step '{self.failed_step}': {self.failure}")
        if self.summary:
            s = self.summary
            out.append(f"  runtime: {s.get('runtime')}")
            out.append(f"  patients scored: {s.get('patients_scored')}")
            out.append(f"  AUC against the recorded diagnosis: {s.get('auc'):.4f}")
            rules = ", ".join(s.get("failed_rules") or []) or "none"
            shown = "yes" if s.get("refusal_shown") else "NO"
            out.append(f"  refusal shown: {shown} (modified kernel refused; failed rule(s): "
                       f"{rules})")
            out.append(f"  keys released to the kernel: {', '.join(s.get('released') or [])}")
        if self.audit:
            out.append("  broker audit log: " + ", ".join(
                f"{count} {kind}" for kind, count in sorted(self.audit.items())))
        return out


def _seconds(cell: Any) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds()


def _step(cell: Any) -> str:
    return str(cell.get("metadata", {}).get("workbench", {}).get("step", "?"))


def _summary(nb: Any) -> dict[str, Any]:
    for cell in nb.cells:
        if cell.cell_type == "code" and _step(cell) == "summary":
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "application/json" in data:
                    return dict(data["application/json"])
    return {}


def _audit_counts(site: Hospital) -> dict[str, int]:
    counts: dict[str, int] = {}
    with site.admin() as admin:
        for record in admin.audit(limit=1000):
            kind = record["kind"]
            payload = record.get("payload", {})
            if kind == "release":
                mode = (payload.get("analyst_approval") or {}).get("mode", "no")
                kind = f"release ({mode} approval)"
            elif kind == "refusal":
                kind = f"refusal ({payload.get('problem', '?')})"
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def execute(site: Hospital, report: HeadlessReport, notebook: Path) -> Any:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code_cells:  # outputs are regenerated, never trusted
        cell.outputs = []
        cell.execution_count = None
    report.cells_total = len(code_cells)
    client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(notebook.parent)}},
                            record_timing=True)
    env = site.kernel_env(WORKBENCH_AUTO_APPROVE="1", **kernel_search_path())
    start = time.perf_counter()
    try:
        with (site.workdir / "kernel.log").open("ab") as kernel_log:
            client.execute(env=env, stdout=kernel_log, stderr=kernel_log)
    except CellExecutionError as err:
        failed = next((c for c in code_cells if any(o.get("output_type") == "error"
                                                    for o in c.get("outputs", []))), None)
        report.failed_step = _step(failed) if failed is not None else "?"
        report.failure = f"{err.ename}: {err.evalue}"
    except Exception as err:  # kernel death, timeouts: report, never hide
        report.failure = f"{type(err).__name__}: {err} (kernel log: {site.workdir / 'kernel.log'})"
    total = time.perf_counter() - start
    ran = [c for c in code_cells if c.get("execution_count") is not None]
    report.cells_run = sum(1 for c in ran if not any(o.get("output_type") == "error"
                                                     for o in c.get("outputs", [])))
    cells = sum(_seconds(c) for c in ran)
    report.steps.append(("analyst: start the Confidential Python kernel (and shut down)",
                         max(0.0, total - cells)))
    report.steps += [(f"notebook: {_step(c)}", _seconds(c)) for c in ran]
    return nb


def run_headless(workdir: Path, rows: int = 569, seed: int = 7,
                 notebook: Path | None = None) -> HeadlessReport:
    report = HeadlessReport(workdir)
    with hospital(workdir, rows, seed) as site:
        nb = execute(site, report, notebook or notebook_path())
        report.steps[:0] = site.steps
        report.summary = _summary(nb) if not report.failure else {}
        report.audit = _audit_counts(site)
    return report
