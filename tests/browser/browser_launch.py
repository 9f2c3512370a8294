"""The system Chromium under Playwright, as every browser test launches it (no browser
download; the flags a root, headless, offline CI run needs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip without Chromium on a developer machine; fail in CI, which installs it."""
    if CHROMIUM.is_file():
        return
    message = (f"{CHROMIUM} not found: install the Debian package 'chromium' "
               "(.ci/run does) or set WORKBENCH_CHROMIUM")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def launched_chromium() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
