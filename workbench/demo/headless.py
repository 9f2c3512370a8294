"""``workbench demo --headless``: the hospital's setup, then the walkthrough, sealed.

The notebook is executed as committed (outputs are regenerated, never trusted) on a real
Confidential Python kernel locked to a sealed session this process holds (``workbench
run``'s client); releases are approved in that session. The summary comes from the
notebook's own ``summary`` cell and from the broker's audit log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.demo.environment import KERNEL_NAME, Hospital, hospital
from workbench.demo.walkthroughs import DEFAULT, WALKTHROUGHS, Walkthrough

NOTEBOOK = WALKTHROUGHS[DEFAULT].notebook
CELL_TIMEOUT_S = 600


def notebook_path() -> Path:
    return WALKTHROUGHS[DEFAULT].path()


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
    sealed: list[str] = field(default_factory=list)
    walkthrough: Walkthrough = WALKTHROUGHS[DEFAULT]

    @property
    def ok(self) -> bool:
        return not self.failure and self.cells_run == self.cells_total and bool(self.summary)

    def lines(self) -> list[str]:
        out = [f"workbench demo --headless: {self.walkthrough.title} "
               f"({self.walkthrough.notebook}), working directory {self.workdir}"]
        out += [f"  {name:<62} {seconds * 1000:9.1f} ms" for name, seconds in self.steps]
        out += [f"  {line}" for line in self.sealed]
        out.append(f"  cells run: {self.cells_run} of {self.cells_total}")
        if self.failure:
            out.append(f"  FAILED at step '{self.failed_step}': {self.failure}")
        if self.summary:
            out += [f"  {line}" for line in self.walkthrough.summary_lines(self.summary)]
        if self.audit:
            out.append("  broker audit log: " + ", ".join(
                f"{count} {kind}" for kind, count in sorted(self.audit.items())))
        return out


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
    """Run the walkthrough through a sealed session: the analyst's side is this process."""
    from workbench.client.run import lock_lines, read_notebook, run_notebook

    nb = read_notebook(notebook)
    report.cells_total = sum(1 for c in nb.cells if c.cell_type == "code")
    env = site.kernel_env(**kernel_search_path())
    start = time.perf_counter()
    try:
        run = run_notebook(notebook, approve=True, env=env, timeout_s=CELL_TIMEOUT_S,
                           pins=site.workdir / "known_brokers.json", echo=lambda _line: None)
    except Exception as err:  # kernel death, a refused lock, timeouts: report, never hide
        report.failure = f"{type(err).__name__}: {err}"
        return nb
    report.sealed = lock_lines(run.lock) if run.lock is not None else []
    if run.failed is not None:
        report.failed_step = _step(run.failed[0])
        report.failure = f"{run.failed[1].get('ename')}: {run.failed[1].get('evalue')}"
    report.cells_run = sum(1 for _cell, result in run.cells if result.status == "ok")
    total = time.perf_counter() - start
    cells = [(_step(cell), result.finished - result.started) for cell, result in run.cells]
    report.steps.append(("analyst: start the kernel, lock it to a sealed session, stop it",
                         max(0.0, total - sum(seconds for _step_, seconds in cells))))
    report.steps += [(f"notebook: {step} (sealed)", seconds) for step, seconds in cells]
    return run.notebook


def run_headless(workdir: Path, rows: int = 569, seed: int = 7,
                 notebook: Path | None = None, walkthrough: str = DEFAULT) -> HeadlessReport:
    chosen = WALKTHROUGHS[walkthrough]
    report = HeadlessReport(workdir, walkthrough=chosen)
    with hospital(workdir, rows, seed) as site:
        if chosen.prepare is not None:
            site.timed(f"hospital: publish what {chosen.title} needs",
                       lambda: chosen.prepare(site))
        nb = execute(site, report, notebook or chosen.path())
        report.steps[:0] = site.steps
        report.summary = _summary(nb) if not report.failure else {}
        report.audit = _audit_counts(site)
    return report
