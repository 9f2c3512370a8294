"""Browser tests: the real key broker, JupyterLab and a Confidential Python kernel as
processes, driven through the system Chromium by Playwright (no browser download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_launch import launched_chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "browser"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# Module scope: Playwright's sync API holds an event loop while it runs; it must be gone
# before tests that drive their own loop (pytest-jupyter) run in the same session.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """The hospital: a broker on a loopback port with the sealed demo assets registered
    under a policy that pins this installation's kernel and accepts the simulated TEE."""
    from workbench.demo.environment import hospital

    with hospital(tmp_path_factory.mktemp("hospital")) as running:
        yield running


@pytest.fixture(scope="module")
def lab(site, tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab whose server extension fetches the broker's published keys."""
    from lab_processes import running_lab

    with running_lab(site, tmp_path_factory.mktemp("lab")) as running:
        yield running


@pytest.fixture
def page(browser, artifacts: Path, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    context.set_default_timeout(60_000)
    page = context.new_page()
    from lab_page import keep_console

    keep_console(page, artifacts / f"{request.node.name}-console.log")
    try:
        yield page
    finally:
        # On failure, what the page showed is the first thing to look at.
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            page.screenshot(path=str(artifacts / f"{request.node.name}-failure.png"))
            status = page.locator(".jp-WorkbenchStatus")
            if status.count():
                (artifacts / f"{request.node.name}-status.txt").write_text(
                    status.first.get_attribute("title") or "")
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
