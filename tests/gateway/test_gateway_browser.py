"""From a local JupyterLab to a remote kernel through the Kernel Gateway, in Chromium: the
topology where even the JavaScript is the analyst's own. The tab locks the gateway's
Confidential Python kernel to a sealed session, checks the broker's token itself, and runs
the walkthrough's cells sealed up to the scores: the releases are approved sealed, and
the scores the browser opens are exactly the model's."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

# The Chromium launcher and page helpers are shared with the lab's browser tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from browser_launch import launched_chromium
from demo_scores import check_scores
from lab_page import (
    NOTEBOOK,
    STATUS,
    DialogAnswerer,
    cell,
    code_cell_index,
    keep_console,
    output_content,
    run_cells,
    status_word,
    wait_for,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "gateway-browser"
SEALED = "Simulated · Sealed"
ATTEST = code_cell_index("wb.attest()")
PREDICT = code_cell_index("model.predict(")
# The analyst's own look at the scores, as JSON the test compares with the model's.
SCORES = """import json
from sklearn.metrics import roc_auc_score
malignant = scores["probability_malignant"]
print(json.dumps({"patients": len(scores), "probability_malignant": malignant.tolist(),
                  "auc": float(roc_auc_score(cohort["diagnosis"] == "M", malignant)),
                  "released": [r["resource"] for r in wb.status()["released"]]}))"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with launched_chromium() as chromium:
        yield chromium


def _outputs(page) -> str:
    return "\n".join(page.locator(".jp-NotebookPanel .jp-OutputArea").all_text_contents())


def _upload(lab, name: str) -> int:
    """The walkthrough up to the scores, plus a cell printing them; the index of that cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = [*nb.cells[:PREDICT + 1], nbformat.v4.new_code_cell(SCORES)]
    response = lab.request("PUT", f"api/contents/{name}",
                           json={"type": "notebook", "format": "json",
                                 "content": json.loads(nbformat.writes(nb))})
    assert response.status_code in (200, 201), response.text
    return len(nb.cells) - 1


def test_cells_run_sealed_on_a_gateway_kernel(browser, lab, gateway, site, plain_scores
                                              ) -> None:
    site.repin()
    with site.admin() as admin:
        before = max([r["seq"] for r in admin.audit(limit=1000)], default=0)
    name = "sealed-through-gateway.ipynb"
    last = _upload(lab, name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    context.set_default_timeout(60_000)
    page = context.new_page()
    keep_console(page, ARTIFACTS / "console.log")
    sent: list[bytes] = []

    def record(ws) -> None:
        ws.on("framesent", lambda p: sent.append(p.encode() if isinstance(p, str) else p))

    page.on("websocket", record)
    try:
        page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
        wait_for(page, lambda: status_word(page) == SEALED,
                 "the gateway's kernel to be locked to this tab", timeout_s=240)
        # The kernel JupyterLab relays to lives on the gateway.
        sessions = lab.request("GET", "api/sessions").json()
        kernel_id = next(s["kernel"]["id"] for s in sessions if s["path"] == name)
        assert kernel_id in [k["id"] for k in gateway.api.kernels()]

        answerer = DialogAnswerer(page, "Release", ARTIFACTS, "release-dialog-through-gateway")
        run_cells(page, 0, last, answerer)
        answerer.until(lambda: "probability_malignant" in output_content(page, last)
                       or "Error" in _outputs(page), "the scores", timeout_s=300)
        assert "probability_malignant" in output_content(page, last), _outputs(page)[-3000:]
        assert len(answerer.texts) == 2, answerer.texts
        check_scores(json.loads(output_content(page, last)), plain_scores)
        assert "probability_malignant" in output_content(page, PREDICT)
        cell(page, ATTEST).scroll_into_view_if_needed()
        card = cell(page, ATTEST).locator(".jp-WorkbenchAttestationOutput [data-wb='state']")
        wait_for(page, lambda: card.count() > 0 and card.inner_text() == "Simulated",
                 "the evidence card's verdict", timeout_s=60)
        assert status_word(page) == SEALED
        page.screenshot(path=str(ARTIFACTS / "sealed-through-gateway.png"))
        title = page.locator(STATUS).get_attribute("title")
        session = title.split("(sealed session ")[1][:16]
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "failure.png"))
        raise
    finally:
        context.close()

    # What the browser sent through JupyterLab and the gateway: sealed requests, no code.
    blob = b"\n".join(sent)
    assert b"execute_request" in blob and session.encode() in blob
    assert b"wb.load_model" not in blob and b"roc_auc_score" not in blob
    with site.admin() as admin:
        releases = [r["payload"] for r in admin.audit(after=before, limit=1000)
                    if r["kind"] == "release"]
    assert sorted(r["resource"] for r in releases) == ["cohort/table-key/clinical",
                                                       "risk-model/file-keyset/main"]
    for release in releases:
        approval = release["analyst_approval"]
        assert approval["mode"] == "sealed" and approval["session"].startswith(session)
