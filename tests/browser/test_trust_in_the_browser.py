"""The analyst's view, in Chromium: run the healthcare notebook on a Confidential Python
kernel, see the server's verdict, confirm (or refuse) each release, and check against the
broker's own audit log that what the page said is what happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from lab_page import (
    DIALOG,
    PANEL,
    STATUS,
    DialogAnswerer,
    cell,
    code_cell_index,
    keep_console,
    open_notebook,
    open_panel,
    output_text,
    panel_field,
    run_cells,
    status_word,
    wait_for,
)
from lab_processes import running_lab

pytestmark = pytest.mark.slow

# The status bar's word for a simulated-TEE kernel this tab locked and verified.
SEALED = "Simulated · Sealed"


ATTEST = code_cell_index("wb.attest()")
LOAD_MODEL = code_cell_index("wb.load_model(")
PREDICT = code_cell_index("model.predict(")


def _audit(site, after: int = 0) -> list[dict]:
    with site.admin() as admin:
        return admin.audit(after=after, limit=1000)


def _last_seq(site) -> int:
    records = _audit(site)
    return records[-1]["seq"] if records else 0


def _attested_card(page):
    card = cell(page, ATTEST).locator(".jp-WorkbenchAttestationOutput [data-wb='state']")
    card.wait_for(timeout=180_000)
    return card


def test_release_shows_the_verdict_and_scores_the_cohort(page, lab, site, artifacts: Path
                                                         ) -> None:
    name = lab.add_notebook("release.ipynb")
    open_notebook(page, lab, name)
    # The tab locks the kernel before any cell runs: the lock attests (binding the tab's
    # session key) and the browser checks the broker's token itself.
    wait_for(page, lambda: status_word(page) == SEALED, "the kernel to be locked to this tab")
    run_cells(page, 0, ATTEST)
    # The wb.attest() output is drawn from the server's verdict, not the kernel's words.
    state = _attested_card(page).inner_text()
    assert state == "Simulated", cell(page, ATTEST).locator("[data-wb='reason']").inner_text()

    answerer = DialogAnswerer(page, "Release", artifacts, "release-dialog")
    run_cells(page, ATTEST + 1, PREDICT, answerer)
    answerer.until(lambda: "probability_malignant" in output_text(page, PREDICT), "the scores")
    dialogs = answerer.texts
    assert dialogs, "no release dialog was shown"
    assert "risk-model" in dialogs[0] and "Simulated" in dialogs[0]
    assert all("SIMULATED" in text for text in dialogs)
    assert "probability_malignant" in output_text(page, PREDICT)

    assert status_word(page) == SEALED
    open_panel(page, widen_px=260)
    panel = page.locator(PANEL)
    assert panel.locator("[data-wb='simulated-marker']").is_visible()
    assert panel_field(page, "measurement") == site.measurement
    rules = panel.locator("tr[data-rule]")
    assert rules.count() > 0
    assert {rules.nth(i).get_attribute("data-passed") for i in range(rules.count())} == {"true"}
    assert panel.locator("[data-check][data-ok='false']").count() == 0
    released = panel_field(page, "released")
    assert "risk-model/file-keyset/main" in released
    assert "cohort/table-key/clinical" in released
    page.screenshot(path=str(artifacts / "trust-panel.png"))

    # The broker agrees: the keys went out, each confirmed interactively in the lab.
    releases = [r for r in _audit(site) if r["kind"] == "release"]
    resources = {r["payload"]["resource"] for r in releases}
    assert {"risk-model/file-keyset/main", "cohort/table-key/clinical"} <= resources
    assert "cohort/table-key/phi" not in resources
    assert len(dialogs) == len(releases)


def test_refuse_releases_nothing(page, lab, site, artifacts: Path) -> None:
    before = _last_seq(site)
    name = lab.add_notebook("refuse.ipynb")
    open_notebook(page, lab, name)
    answerer = DialogAnswerer(page, "Refuse", artifacts, "refuse-dialog")
    run_cells(page, 0, LOAD_MODEL, answerer)
    answerer.until(lambda: "declined" in output_text(page, LOAD_MODEL), "the refusal")
    dialogs = answerer.texts
    assert len(dialogs) == 1
    assert "declined" in output_text(page, LOAD_MODEL)
    open_panel(page)
    refusals = page.locator(f"{PANEL} [data-wb='refusals']").inner_text()
    assert "risk-model/file-keyset/main" in refusals and "declined by the analyst" in refusals
    assert panel_field(page, "released") == "nothing released yet"

    after = _audit(site, before)
    assert any(r["kind"] == "attest" for r in after), "the kernel did not attest"
    assert [r for r in after if r["kind"] == "release"] == []


def test_bad_token_signature_is_refused_in_the_browser(browser, site, artifacts: Path,
                                                       tmp_path: Path) -> None:
    # A server that trusts another broker key: every real token now has a bad signature.
    wrong = tmp_path / "not-the-broker.jwks"
    wrong.write_text(json.dumps({"keys": [
        JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True)]}))
    before = _last_seq(site)
    with running_lab(site, tmp_path / "lab",
                     {"WorkbenchLab": {"broker_public_keys": [str(wrong)]}}) as lab:
        context = browser.new_context(viewport={"width": 1500, "height": 950})
        context.set_default_timeout(60_000)
        page = context.new_page()
        keep_console(page, artifacts / "bad-signature-console.log")
        try:
            name = lab.add_notebook("bad-signature.ipynb")
            open_notebook(page, lab, name)
            run_cells(page, 0, ATTEST)
            state = _attested_card(page).inner_text()
            reason = cell(page, ATTEST).locator("[data-wb='reason']").inner_text()
            assert state == "Refused", reason
            assert "signature does not verify" in reason
            wait_for(page, lambda: status_word(page) == "Refused", "the status bar to refuse")
            assert "signature does not verify" in page.locator(STATUS).get_attribute("title")
            open_panel(page)
            assert "signature does not verify" in panel_field(page, "reason")
            page.screenshot(path=str(artifacts / "bad-signature-panel.png"))

            # A release asked for on such a kernel offers only Refuse; Escape answers it.
            answerer = DialogAnswerer(page, "Escape", artifacts, "bad-signature-dialog")
            run_cells(page, ATTEST + 1, LOAD_MODEL, answerer)
            answerer.until(lambda: "declined" in output_text(page, LOAD_MODEL), "the refusal")
            dialogs = answerer.texts
            assert len(dialogs) == 1 and "release is not offered" in dialogs[0]
            assert page.locator(DIALOG).count() == 0
        finally:
            context.close()
    assert [r for r in _audit(site, before) if r["kind"] == "release"] == []
