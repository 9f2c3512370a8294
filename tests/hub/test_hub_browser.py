"""The analyst's way in, in Chromium: log in at the hub's URL, the hub spawns JupyterLab, the
walkthrough notebook (seeded into the new home by the hub config) opens on a Confidential
Python kernel, which the tab locks to a sealed session; the attestation cell runs, the trust
panel shows the server's verdict, and the model and the cohort are released on sealed
approvals and the patients scored, all through the hub's proxy."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The Chromium launcher and page helpers are shared with the lab's browser tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from browser_launch import launched_chromium
from lab_page import (
    PANEL,
    STATUS,
    DialogAnswerer,
    code_cell_index,
    output_content,
    run_cells,
    wait_for,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "healthcare-demo.ipynb"
USER = "carol"
ARTIFACTS = ROOT / "artifacts" / "hub-browser"
# Plugins that reach outside this machine or pop up over the page under test.
DISABLED_PLUGINS = ("@jupyterlab/apputils-extension:announcements",
                    "@jupyterlab/extensionmanager-extension:plugin")
SEALED = "Simulated · Sealed"
SEALED_MIME = "application/vnd.workbench.sealed+json"
PREDICT = code_cell_index("model.predict(")


def _attest_cell_index() -> int:
    cells = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())["cells"]
    return next(i for i, c in enumerate(cells)
                if c["cell_type"] == "code" and "wb.attest()" in "".join(c["source"]))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        yield page
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"))
        context.close()


def _run_cell(page, cell, index: int) -> None:
    """Select the cell and press Shift+Enter, as an analyst does; a code cell must show that
    it ran or runs ("[*]" or a number) before the next one is started."""
    prompt = cell.locator(".jp-InputPrompt").first
    for _attempt in range(3):
        prompt.click()
        page.keyboard.press("Escape")
        wait_for(page, lambda: "jp-mod-active" in (cell.get_attribute("class") or ""),
                  f"cell {index} to be selected", timeout_s=10)
        page.keyboard.press("Shift+Enter")
        if "jp-CodeCell" not in (cell.get_attribute("class") or ""):
            return
        try:
            wait_for(page, lambda: prompt.inner_text().strip() not in ("", "[ ]:"),
                      f"cell {index} to start", timeout_s=15)
            return
        except AssertionError:
            continue  # the keypress was lost (JupyterLab still connecting); press again
    raise AssertionError(f"cell {index} did not run after three Shift+Enter")


def _quiet_lab(home: Path) -> None:
    """The user's own JupyterLab settings: no news feed or extension manager popping up."""
    labconfig = home / ".jupyter" / "labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": dict.fromkeys(DISABLED_PLUGINS, True)}))


def test_log_in_and_run_the_walkthrough_sealed(page, hub, site):
    _quiet_lab(hub.home(USER))
    site.repin()
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", "any password: the local hub's dummy authenticator")
    page.click("#login_submit")
    # The hub spawns the server, then sends the browser on to JupyterLab.
    page.wait_for_url(f"{hub.url}/user/{USER}/lab**", timeout=240_000)

    page.goto(f"{hub.url}/user/{USER}/lab/tree/{NOTEBOOK}?reset")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
    status = page.locator(STATUS)
    wait_for(page, lambda: "waiting for the kernel" not in (
        status.get_attribute("title") or "waiting for the kernel"),
        "the Confidential Python kernel to answer on the workbench.attestation comm")
    assert (hub.home(USER) / NOTEBOOK).is_file()  # seeded by the hub's pre-spawn hook
    # The tab locks the kernel before any cell runs and checks the broker's token itself.
    word = page.locator(f"{STATUS} .jp-WorkbenchStatus-word")
    wait_for(page, lambda: word.inner_text() == SEALED, "the kernel to be locked to this tab")
    with site.admin() as admin:
        before = max([r["seq"] for r in admin.audit(limit=1000)], default=0)

    attest = _attest_cell_index()
    cells = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")
    for index in range(attest + 1):  # run the cells up to the attestation, one by one
        _run_cell(page, cells.nth(index), index)
    card = cells.nth(attest).locator(".jp-WorkbenchAttestationOutput [data-wb='state']")
    card.wait_for(timeout=180_000)
    # The card shows the server extension's verdict, not what the kernel says of itself.
    wait_for(page, lambda: card.inner_text() != "" and "Checking" not in card.inner_text(),
              "the server's verdict in the attestation output")
    assert card.inner_text() == "Simulated"

    status.click()
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    wait_for(page, lambda: panel.locator("[data-wb='measurement']").count() > 0,
              "the evidence in the trust panel")
    assert panel.locator("[data-wb='state']").first.inner_text() == SEALED
    assert panel.locator("[data-wb='simulated-marker']").is_visible()
    assert panel.locator("[data-wb='measurement']").first.inner_text() == site.measurement
    assert word.inner_text() == SEALED
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "trust-panel-through-hub.png"))

    # The model and the clinical columns, each released on the analyst's sealed approval,
    # then every patient scored, as in JupyterLab alone.
    answerer = DialogAnswerer(page, "Release", ARTIFACTS, "release-dialog-through-hub")
    run_cells(page, attest + 1, PREDICT, answerer)
    answerer.until(lambda: "probability_malignant" in output_content(page, PREDICT), "the scores")
    assert len(answerer.texts) == 2, answerer.texts
    assert page.locator(".jp-NotebookPanel [data-wb^='sealed-']").count() == 0
    assert word.inner_text() == SEALED
    session = page.locator(STATUS).get_attribute("title").split("(sealed session ")[1][:16]
    with site.admin() as admin:
        releases = [r["payload"] for r in admin.audit(after=before, limit=1000)
                    if r["kind"] == "release"]
    assert sorted(r["resource"] for r in releases) == ["cohort/table-key/clinical",
                                                       "risk-model/file-keyset/main"]
    for release in releases:
        approval = release["analyst_approval"]
        assert approval["mode"] == "sealed" and len(approval["session"]) == 64, approval
        assert approval["session"].startswith(session), (approval, session)
