"""``workbench run NOTEBOOK``: execute a notebook through a sealed session.

The kernel is started here, locked to a session key this process holds, checked (the
broker's token, under the pinned broker key) before any cell is sent, and every cell goes
sealed. The outputs are opened here and written to ``--out`` in the clear: this is the
analyst's own machine, the one place they may be read.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.client.sealed import CellRun, Lock, SealedKernel, SealedSessionError
from workbench.errors import InputError, WorkbenchError

DEFAULT_KERNEL = "confidential-python"
START_TIMEOUT_S = 120.0


@dataclass
class NotebookRun:
    notebook: Any
    lock: Lock | None = None
    cells: list[tuple[Any, CellRun]] = field(default_factory=list)
    failed: tuple[Any, dict[str, Any]] | None = None
    started_s: float = 0.0
    # Sealed outputs lost on the way (IOPub gaps) over the whole run.
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.failed is None and self.lock is not None


def read_notebook(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise InputError(f"notebook {path} does not exist") from None
    except (OSError, ValueError) as err:  # nbformat's read errors are ValueErrors
        raise InputError(f"notebook {path} cannot be read as a Jupyter notebook: {err}") \
            from None


def ask_on_terminal(request: dict[str, Any]) -> bool:
    """Ask the analyst at the terminal; without one, decline and say how to approve."""
    what = f"{request.get('kind', 'resource')} '{request.get('dataset', '?')}' " \
           f"({request.get('resource', '?')})"
    if not sys.stdin.isatty():
        print(f"declined the release of {what}: no terminal to ask on; pass --approve to "
              "approve releases in this run", file=sys.stderr, flush=True)
        return False
    answer = input(f"release {what} to this kernel? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def lock_lines(lock: Lock) -> list[str]:
    status = ", ".join(sorted({s.status.value for s in lock.claims.submods.values()})) or "?"
    pinned = lock.broker_key
    how = ("pinned now (first use): compare it with the fingerprint the data owner published"
           if pinned.first_use else "as pinned")
    return [f"sealed session {lock.session[:16]}: kernel locked, token verified here",
            f"  broker {lock.broker} key {pinned.fingerprint} ({how})",
            f"  verdict: {status}"]


def run_notebook(path: Path, *, out: Path | None = None,
                 approve: bool | Callable[[dict[str, Any]], bool] = ask_on_terminal,
                 broker_fingerprint: str | None = None, pins: Path | None = None,
                 env: dict[str, str] | None = None, kernel_name: str | None = None,
                 timeout_s: float = 600.0,
                 on_started: Callable[[Any], None] | None = None,
                 echo: Callable[[str], None] = print,
                 analyst_key: Any = None) -> NotebookRun:
    """Run every code cell of ``path`` sealed, in order, stopping at the first error."""
    from workbench.kernel.transport import CurveKernelManager

    nb = read_notebook(path)
    name = kernel_name or nb.metadata.get("kernelspec", {}).get("name") or DEFAULT_KERNEL
    run = NotebookRun(nb)
    manager = CurveKernelManager(kernel_name=name)
    start = time.perf_counter()
    try:
        manager.start_kernel(env=dict(os.environ if env is None else env),
                             cwd=str(path.resolve().parent))
    except Exception as err:  # no such kernelspec, a provisioner refusal
        raise WorkbenchError(f"cannot start kernel {name!r} for {path}: {err}") from None
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=START_TIMEOUT_S)
        if on_started is not None:
            on_started(manager)
        kernel = SealedKernel(client, approve=approve, broker_fingerprint=broker_fingerprint,
                              pins=pins, timeout_s=timeout_s, analyst_key=analyst_key)
        run.lock = kernel.lock()
        run.started_s = time.perf_counter() - start
        for line in lock_lines(run.lock):
            echo(line)
        _cells(kernel, nb, run, echo)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    if out is not None:
        import nbformat

        nbformat.write(nb, out)
    return run


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


# The ``ename`` a stopped run reports when the session itself failed, not the cell's code.
SESSION_VIOLATION = "SealedSessionViolation"


def _cells(kernel: SealedKernel, nb: Any, run: NotebookRun,
           echo: Callable[[str], None]) -> None:
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code_cells:  # outputs are regenerated, never trusted
        cell.outputs, cell.execution_count = [], None
    for number, cell in enumerate(code_cells, 1):
        try:
            result = kernel.execute(cell.source)
        except SealedSessionError as err:  # the kernel is not ours any more (restarted)
            run.failed = (cell, {"ename": SESSION_VIOLATION, "evalue": str(err)})
            echo(f"  stopped at cell {number}: {err}")
            return
        cell.outputs = result.outputs
        cell.execution_count = result.reply.get("execution_count")
        cell.metadata.setdefault("execution", {}).update({
            "workbench.sealed.started": _iso(result.started),
            "workbench.sealed.finished": _iso(result.finished),
            **({"workbench.sealed.dropped": result.dropped} if result.dropped else {})})
        run.cells.append((cell, result))
        run.dropped += result.dropped
        seconds = result.finished - result.started
        echo(f"  cell {number}/{len(code_cells)}: {result.status} ({seconds:.1f} s)")
        if result.dropped:
            echo(f"  cell {number}: {result.dropped} sealed output message(s) were lost on "
                 "the way (a gap on IOPub): its outputs may be incomplete")
        if result.violation is not None:
            reason = (f"{len(result.refused)} message(s) that did not come sealed from this "
                      f"session were refused, so this cell's outputs and reply cannot be "
                      f"trusted as the kernel's: {result.violation}")
            run.failed = (cell, {"ename": SESSION_VIOLATION, "evalue": reason})
            echo(f"  stopped at cell {number}: {reason}")
            return
        error = result.error or (result.reply if result.status == "error" else None)
        if error is not None:
            run.failed = (cell, error)
            echo(f"  stopped at cell {number}: {error.get('ename')}: {error.get('evalue')}")
            return
