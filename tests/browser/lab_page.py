"""What an analyst does in JupyterLab, as Playwright steps: open a notebook, run cells with
Shift+Enter, answer release dialogs, read the trust panel and the status bar."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from lab_processes import Lab
from playwright.sync_api import TimeoutError as PlaywrightTimeout

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "healthcare-demo.ipynb"
DIALOG = ".jp-WorkbenchRelease-dialog"
STATUS = ".jp-WorkbenchStatus"
PANEL = "#workbench-trust-panel"
# What the status item says before the extension has heard from the notebook's kernel.
NOT_YET = ("waiting for the kernel", "no notebook with a kernel is active")


def open_notebook(page, lab: Lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    # The kernel is up, and the extension has heard from it over the comm.
    wait_for(page, lambda: "| Idle" in page.locator(".jp-StatusBar-Widget").inner_text(),
             "the kernel to be idle", timeout_s=120)
    wait_for(page, lambda: not any(word in (page.locator(STATUS).get_attribute("title") or "")
                                   for word in NOT_YET),
             "the kernel to answer on the workbench.attestation comm", timeout_s=120)


def cell(page, index: int):
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


class DialogAnswerer:
    """Answers each release dialog with one button (or Escape), keeping what each said; the
    first one is saved as a screenshot."""

    def __init__(self, page, answer: str, artifacts: Path, shot: str, max_dialogs: int = 4
                 ) -> None:
        self.page, self.answer, self.artifacts, self.shot = page, answer, artifacts, shot
        self.max_dialogs = max_dialogs
        self.texts: list[str] = []

    def pending(self) -> bool:
        return self.page.locator(DIALOG).count() > 0

    def __call__(self) -> None:
        dialog = self.page.locator(DIALOG)
        assert dialog.count() == 1, "more than one release dialog at once"
        assert len(self.texts) < self.max_dialogs, f"more dialogs than expected: {self.texts}"
        dialog.locator(".jp-WorkbenchRelease").wait_for()
        self.texts.append(dialog.inner_text())
        if len(self.texts) == 1:
            self.page.screenshot(path=str(self.artifacts / f"{self.shot}.png"))
        if self.answer == "Escape":
            self.page.keyboard.press("Escape")
        else:
            dialog.locator(".jp-Dialog-footer button", has_text=self.answer).click()
        dialog.wait_for(state="detached")

    def until(self, done: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; " \
                                                f"dialogs so far: {self.texts}"
            if self.pending():
                self()
            else:
                self.page.wait_for_timeout(250)


def run_cells(page, first: int, last: int, dialogs: DialogAnswerer | None = None) -> None:
    """Run cells ``first`` to ``last`` one by one: select, Shift+Enter, as a person queues
    them; a release dialog that comes up meanwhile is answered first."""
    for index in range(first, last + 1):
        target = cell(page, index)
        for _attempt in range(20):
            if dialogs is not None and dialogs.pending():
                dialogs()
            try:
                target.locator(".jp-InputPrompt").first.click(timeout=3000)
                break
            except PlaywrightTimeout:
                # A dialog opened over the notebook between the check and the click.
                assert dialogs is not None and dialogs.pending(), f"cannot click cell {index}"
        # No Escape to leave edit mode: clicking the prompt selects in command mode, and an
        # Escape landing in a release dialog that just opened would refuse the release.
        wait_for(page, lambda target=target: "jp-mod-active" in (
            target.get_attribute("class") or ""), f"cell {index} to be selected", timeout_s=10)
        page.keyboard.press("Shift+Enter")


def wait_for(page, condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def output_text(page, index: int) -> str:
    outputs = cell(page, index).locator(".jp-OutputArea")
    return outputs.inner_text() if outputs.count() else ""


def output_content(page, index: int) -> str:
    """The text of a cell's outputs, drawn or not: the notebook skips drawing cells out of
    view (content-visibility), which empties ``inner_text`` but not the DOM's text."""
    outputs = cell(page, index).locator(".jp-OutputArea")
    return (outputs.first.text_content() or "") if outputs.count() else ""


def open_panel(page, widen_px: int = 0) -> None:
    page.locator(STATUS).click()
    page.locator(PANEL).wait_for(state="visible")
    if widen_px:
        # Drag the splitter between the notebook and the right sidebar, as a reader would.
        handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:visible").last
        box = handle.bounding_box()
        if box is not None:
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x - widen_px, y, steps=5)
            page.mouse.up()


def panel_field(page, key: str) -> str:
    return page.locator(f"{PANEL} [data-wb='{key}']").first.inner_text()


def status_word(page) -> str:
    return page.locator(f"{STATUS} .jp-WorkbenchStatus-word").inner_text()


def keep_console(page, path: Path) -> None:
    """The page's console warnings and errors, for reading after a failure."""
    def write(message) -> None:
        if message.type in ("warning", "error") or "workbench" in message.text:
            with path.open("a") as handle:
                handle.write(f"{message.type}: {message.text}\n")

    path.unlink(missing_ok=True)
    page.on("console", write)


def code_cell_index(needle: str) -> int:
    """Index (among all cells, as the page shows them) of the first code cell with ``needle``."""
    notebook = json.loads(NOTEBOOK.read_text())
    for index, item in enumerate(notebook["cells"]):
        if item["cell_type"] == "code" and needle in "".join(item["source"]):
            return index
    raise AssertionError(f"no code cell of the notebook contains {needle!r}")
