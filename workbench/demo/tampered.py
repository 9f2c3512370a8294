"""The walkthrough's refusal: a kernel whose code was changed asks for the key and is refused.

``request_from_modified_kernel`` copies this installation's code, changes one line, starts
a real Confidential Python kernel on the copy (jupyter_client, the same kernelspec and
provisioner) and has it ask the broker for a dataset. Its measurement differs from the one
the hospital's policy pins, so the broker refuses and names the failed rule.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

KERNEL_NAME = "confidential-python"
MARKER = "WORKBENCH-MODIFIED-KERNEL-RESULT "
START_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 300.0
CHANGED_FILE = Path("inference") / "model.py"
CHANGE = "\n# modified: a copy of every score would be sent elsewhere from here\n"

_PROBE = """
import json
import workbench as wb
from workbench.kernel.errors import ReleaseRefused
out = {}
report = wb.attest()
out["measurement"] = report.identity("measurement")
out["status"] = report.status
try:
    wb.open_dataset(%(dataset)r)
    out["refused"] = False
except ReleaseRefused as err:
    out.update(refused=True, error=type(err).__name__, message=str(err),
               failed_rules=err.failed_rules)
except Exception as err:
    out.update(refused=False, error=type(err).__name__, message=str(err))
print(%(marker)r + json.dumps(out))
"""


@dataclass
class Refusal:
    dataset: str
    refused: bool
    measurement: str
    status: str
    error: str = ""
    message: str = ""
    failed_rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_rule_names(self) -> list[str]:
        return [str(r.get("name")) for r in self.failed_rules]

    def __repr__(self) -> str:
        lines = [f"modified kernel (measurement {self.measurement[:16]}…) asked for "
                 f"'{self.dataset}': {'REFUSED' if self.refused else 'not refused'}",
                 f"  {self.error}: {self.message}"]
        lines += [f"  failed rule {r.get('name')}: expected {r.get('expected')}, got "
                  f"{r.get('actual')}" for r in self.failed_rules]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        verdict = "refused" if self.refused else "NOT refused"
        colour = "#cf222e" if self.refused else "#9a6700"
        rows = "".join(
            f"<tr><td>{html.escape(str(r.get('name')))}</td>"
            f"<td style='font-family:monospace;word-break:break-all'>"
            f"{html.escape(str(r.get('expected')))}</td>"
            f"<td style='font-family:monospace;word-break:break-all'>"
            f"{html.escape(str(r.get('actual')))}</td>"
            f"<td style='text-align:left'>{html.escape(str(r.get('reason')))}</td></tr>"
            for r in self.failed_rules)
        return (f"<div><p>A kernel with one changed line asked for <b>{html.escape(self.dataset)}"
                f"</b>: <span style='color:{colour}'><b>{verdict}</b></span> "
                f"(its verdict: {html.escape(self.status)})</p>"
                f"<p><code>{html.escape(self.error)}: {html.escape(self.message)}</code></p>"
                "<table><tr><th>failed rule</th><th>expected</th><th>actual</th><th>reason</th>"
                f"</tr>{rows}</table></div>")


def _modified_copy(root: Path) -> Path:
    import workbench

    package = Path(workbench.__file__).resolve().parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(package, root / "workbench", ignore=ignore)
    kernels = package.parent / "kernels"
    if kernels.is_dir():
        shutil.copytree(kernels, root / "kernels", ignore=ignore)
    with (root / "workbench" / CHANGED_FILE).open("a") as handle:
        handle.write(CHANGE)
    return root


def _run(client: Any, code: str) -> tuple[str, str]:
    """Execute ``code``; return (stdout text, error line)."""
    msg_id = client.execute(code)
    stdout, error = [], ""
    while True:
        msg = client.get_iopub_msg(timeout=RUN_TIMEOUT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            stdout.append(content["text"])
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(stdout), error


def request_from_modified_kernel(dataset: str = "cohort") -> Refusal:
    """Start a kernel on a changed copy of this code and let it ask for ``dataset``."""
    from jupyter_client.manager import KernelManager

    with tempfile.TemporaryDirectory(prefix="workbench-modified-kernel-") as tmp:
        root = _modified_copy(Path(tmp))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH"))
                                            if p)
        for name in ("WORKBENCH_AUTO_APPROVE", "JPY_PARENT_PID"):
            env.pop(name, None)
        manager = KernelManager(kernel_name=KERNEL_NAME)
        manager.start_kernel(env=env, cwd=str(root))
        client = manager.client()
        try:
            client.start_channels()
            client.wait_for_ready(timeout=START_TIMEOUT_S)
            stdout, error = _run(client, _PROBE % {"dataset": dataset, "marker": MARKER})
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    line = next((x for x in stdout.splitlines() if x.startswith(MARKER)), None)
    if line is None:
        raise WorkbenchError(f"the modified kernel did not report back ({error or 'no output'})")
    found = json.loads(line[len(MARKER):])
    return Refusal(dataset=dataset, refused=bool(found.get("refused")),
                   measurement=str(found.get("measurement")), status=str(found.get("status")),
                   error=str(found.get("error", "")), message=str(found.get("message", "")),
                   failed_rules=list(found.get("failed_rules") or []))
