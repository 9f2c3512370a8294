"""The walkthrough sealed end to end, in Chromium: JupyterLab locks the Confidential Python
kernel to the tab, every cell runs sealed and every output is opened in the browser, the
release dialogs' approvals travel sealed and the broker records them by session
fingerprint. What the Jupyter server relays (the websocket frames) and what it saves (the
.ipynb) hold no patient name and no released key; a reopened notebook shows placeholders.
A broker key other than the one this browser pinned is refused, both fingerprints shown,
and no cell is sent to the kernel."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
from pathlib import Path

import httpx
import nbformat
import pytest
from jwcrypto.jwk import JWK
from lab_page import (
    NOTEBOOK,
    PANEL,
    STATUS,
    DialogAnswerer,
    cell,
    code_cell_index,
    keep_console,
    open_notebook,
    open_panel,
    output_content,
    output_text,
    run_cells,
    status_word,
    wait_for,
)

from workbench.sealing.keyring import Keyring

pytestmark = pytest.mark.slow

SEALED = "Simulated · Sealed"
SEALED_MIME = "application/vnd.workbench.sealed+json"
PLACEHOLDER = "Sealed output: only the browser tab that ran this kernel's session can read it"
ATTEST = code_cell_index("wb.attest()")
PREDICT = code_cell_index("model.predict(")
PLOT = code_cell_index("plt.subplots(")
REFUSAL = code_cell_index("request_from_modified_kernel(")
SUMMARY = code_cell_index('"patients_scored"')
PATIENTS = ('import workbench as wb\n'
            'patients = wb.open_dataset("cohort", columns=["name", "mrn"])\n'
            'print(list(patients["name"][:5]))')


def _audit(site, after: int = 0) -> list[dict]:
    with site.admin() as admin:
        return admin.audit(after=after, limit=1000)


def _last_seq(site) -> int:
    records = _audit(site)
    return records[-1]["seq"] if records else 0


def _walkthrough_with_patients(root: Path, name: str) -> int:
    """A copy of the walkthrough with a last cell printing five patients' names; the index
    of that cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PATIENTS))
    nbformat.write(nb, root / name)
    return len(nb.cells) - 1


class Frames:
    """Every websocket frame the page exchanges with the Jupyter server, both ways."""

    def __init__(self, page) -> None:
        self.frames: list[bytes] = []
        self.urls: list[str] = []
        page.on("websocket", self._socket)

    def _socket(self, ws) -> None:
        self.urls.append(ws.url)
        ws.on("framereceived", self._keep)
        ws.on("framesent", self._keep)

    def _keep(self, payload) -> None:
        self.frames.append(payload.encode() if isinstance(payload, str) else bytes(payload))

    @property
    def blob(self) -> bytes:
        return b"\n".join(self.frames)


def _canaries(names: list[str], keys: list[bytes]) -> list[bytes]:
    found = [name.encode() for name in names]
    for key in keys:
        found += [key, key.hex().encode(), base64.b64encode(key),
                  base64.urlsafe_b64encode(key).rstrip(b"=")]
    return found


def _shown(page, index: int) -> str:
    """What a cell's outputs show once scrolled to (the notebook skips drawing offscreen
    cells: content-visibility)."""
    cell(page, index).scroll_into_view_if_needed()
    return output_text(page, index)


def _save(page, path: Path, last: int) -> dict:
    """Save as the analyst does (Ctrl+S in the notebook), then read the file from disk."""
    before = path.stat().st_mtime_ns
    cell(page, last).locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Control+s")
    wait_for(page, lambda: path.stat().st_mtime_ns != before
             and len(json.loads(path.read_text())["cells"][last].get("outputs", [])) > 0,
             "the notebook to be saved with its outputs", timeout_s=60)
    return json.loads(path.read_text())


def test_the_walkthrough_runs_sealed_end_to_end(page, lab, site, artifacts: Path) -> None:
    site.repin()
    before = _last_seq(site)
    name = "sealed-walkthrough.ipynb"
    last = _walkthrough_with_patients(lab.root, name)
    frames = Frames(page)
    open_notebook(page, lab, name)
    wait_for(page, lambda: status_word(page) == SEALED, "the kernel to be locked to this tab")

    answerer = DialogAnswerer(page, "Release", artifacts, "sealed-release-dialog")
    run_cells(page, 0, last, answerer)
    answerer.until(lambda: "[" in output_content(page, last)
                   or "Error" in output_content(page, last),
                   "the patients' names", timeout_s=420)
    # Three releases, each confirmed in the dialog: the model, the clinical columns and,
    # for the last cell, the identifiers.
    assert len(answerer.texts) == 3, answerer.texts

    # Everything was opened and drawn in the browser, as without sealing.
    card = cell(page, ATTEST).locator(".jp-WorkbenchAttestationOutput [data-wb='state']")
    cell(page, ATTEST).scroll_into_view_if_needed()
    wait_for(page, lambda: card.count() > 0 and card.inner_text() == "Simulated",
             "the evidence card's verdict", timeout_s=60)
    assert "probability_malignant" in _shown(page, PREDICT)
    cell(page, PLOT).scroll_into_view_if_needed()
    figure = cell(page, PLOT).locator(".jp-OutputArea img")
    figure.first.wait_for()
    assert figure.first.evaluate("img => img.complete && img.naturalWidth > 200")
    refusal = _shown(page, REFUSAL)
    assert "refused" in refusal and "simulated.measurement" in refusal, refusal
    summary = _shown(page, SUMMARY)
    assert "patients_scored" in summary and "569" in summary, summary
    names = ast.literal_eval(_shown(page, last).strip())
    assert len(names) == 5 and all(isinstance(n, str) and n for n in names), names
    # No cell ran unsealed: every output on the page came out of a sealed envelope.
    drawn = page.locator(".jp-NotebookPanel .jp-OutputArea-output").count()
    assert drawn >= 10
    assert page.locator(".jp-NotebookPanel .jp-WorkbenchSealedOutput").count() == drawn
    # No placeholder, no refused output.
    assert page.locator(".jp-NotebookPanel [data-wb^='sealed-']").count() == 0
    assert status_word(page) == SEALED
    title = page.locator(STATUS).get_attribute("title")
    open_panel(page)
    assert "Sealed" in page.locator(f"{PANEL} [data-wb='state']").first.inner_text()
    page.screenshot(path=str(artifacts / "sealed-walkthrough.png"), full_page=False)

    # The saved notebook holds ciphertext only, all of one session: the tab's.
    saved = _save(page, lab.root / name, last)
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert len(outputs) >= 10
    assert all(o["output_type"] in ("display_data", "execute_result")
               and set(o["data"]) == {SEALED_MIME} for o in outputs), outputs[:2]
    sessions = {o["data"][SEALED_MIME]["session"] for o in outputs}
    assert len(sessions) == 1, sessions
    (session,) = sessions
    assert len(session) == 64 and f"(sealed session {session[:16]})" in title

    # The broker released each key on a sealed approval, named by this tab's session.
    releases = [r["payload"] for r in _audit(site, before) if r["kind"] == "release"]
    resources = [r["resource"] for r in releases]
    assert sorted(resources) == sorted({"risk-model/file-keyset/main",
                                        "cohort/table-key/clinical",
                                        "cohort/table-key/phi"}), resources
    assert [r["analyst_approval"] for r in releases] == \
        [{"mode": "sealed", "session": session}] * 3

    keyring = Keyring.open(site.workdir / "hospital.keyring")
    keys = [keyring.get_key(resource) for resource in resources]
    canaries = _canaries(names, keys)
    text = (lab.root / name).read_bytes()
    assert [c for c in canaries if c in text] == []
    blob = frames.blob
    # The kernel's channels went by (the figure and the tables, sealed) ...
    assert len(blob) > 200_000 and session.encode() in blob, (len(blob), frames.urls)
    assert any("/api/kernels/" in url for url in frames.urls)
    # ... and nothing the analyst read on the page, nor a released key, was in them.
    assert [c for c in canaries if c in blob] == []
    assert b"execute_request" in blob and b"wb.load_model" not in blob

    # Reopened elsewhere (another browser profile: no session key), every output is the
    # documented placeholder, and the kernel is shown locked to another session.
    other = page.context.browser.new_context(viewport={"width": 1500, "height": 950})
    try:
        again = other.new_page()
        keep_console(again, artifacts / "sealed-reopened-console.log")
        open_notebook(again, lab, name)
        placeholders = again.locator("[data-wb='sealed-placeholder']")
        wait_for(again, lambda: placeholders.count() == len(outputs), "the placeholders")
        assert placeholders.first.inner_text() == f"{PLACEHOLDER} (session {session[:16]})"
        wait_for(again, lambda: status_word(again) == "Refused", "the kernel shown as locked")
        assert "locked to another sealed session" in again.locator(STATUS).get_attribute("title")
        shown = again.locator(".jp-NotebookPanel").inner_text()
        assert not any(n in shown for n in names)
        again.screenshot(path=str(artifacts / "sealed-reopened.png"))
    finally:
        other.close()


def _broker_kid(site) -> str:
    jwks = httpx.get(f"{site.broker_url}/.well-known/jwks.json", timeout=10).json()
    (key,) = jwks["keys"]
    return JWK(**key).thumbprint()


def test_a_different_broker_key_is_refused_with_both_fingerprints(browser, lab, site,
                                                                  artifacts: Path) -> None:
    site.repin()
    impostor = JWK.generate(kty="EC", crv="P-256")
    public = impostor.export_public(as_dict=True)
    pin = {site.broker_url: {"kid": impostor.thumbprint(),
                             "jwk": {k: public[k] for k in ("kty", "crv", "x", "y")},
                             "pinnedAt": "2026-01-01T00:00:00.000Z"}}
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    context.set_default_timeout(60_000)
    # This browser pinned another key for the broker URL before the kernel started.
    context.add_init_script(
        "try { window.localStorage.setItem('workbench.pinnedBrokerKeys', "
        f"{json.dumps(json.dumps(pin))}); }} catch (e) {{}}")
    page = context.new_page()
    keep_console(page, artifacts / "other-broker-key-console.log")
    frames = Frames(page)
    marker = lab.root / "ran-marker.txt"
    name = "other-broker-key.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').write('ran')\nprint('ran')")]
    nb.metadata["kernelspec"] = json.loads(NOTEBOOK.read_text())["metadata"]["kernelspec"]
    nbformat.write(nb, lab.root / name)
    try:
        open_notebook(page, lab, name)
        wait_for(page, lambda: status_word(page) == "Refused", "the lock to be refused")
        reason = page.locator(STATUS).get_attribute("title")
        ours, theirs = f"SHA256:{_broker_kid(site)}", f"SHA256:{impostor.thumbprint()}"
        assert ours in reason and theirs in reason, reason
        assert "now presents key" in reason and "pinned" in reason
        toast = page.locator(".jp-Notification-Toast, .Toastify__toast").filter(
            has_text="cells will not run")
        toast.first.wait_for()
        # The toast is cut short; its action opens the panel, which has the whole reason.
        toast.first.get_by_role("button", name="Show details").click()
        why = page.locator(f"{PANEL} [data-wb='sealed-reason']")
        why.wait_for(state="visible")
        assert ours in why.inner_text() and theirs in why.inner_text(), why.inner_text()
        assert "not sealed: cells are not run" in page.locator(PANEL).inner_text()
        page.screenshot(path=str(artifacts / "other-broker-key.png"))

        sent_before = len(frames.frames)
        run_cells(page, 0, 0)
        # Shift+Enter moved on to a new cell below: the notebook took the keypress.
        wait_for(page, lambda: page.locator(".jp-NotebookPanel .jp-Cell").count() == 2,
                 "a new cell below the one run", timeout_s=10)
        page.wait_for_timeout(3000)
        # The cell was not run: not sent to the kernel at all, no output, no file.
        later = b"\n".join(frames.frames[sent_before:])
        assert b"execute_request" not in later
        assert output_text(page, 0) == ""
        assert cell(page, 0).locator(".jp-InputPrompt").first.inner_text().strip() == "[ ]:"
        assert not marker.exists()
        # The pin was not replaced by the key the kernel presented.
        pins = json.loads(page.evaluate(
            "() => window.localStorage.getItem('workbench.pinnedBrokerKeys')"))
        assert pins[site.broker_url]["kid"] == impostor.thumbprint()
    finally:
        context.close()


def test_a_canary_check_can_fail() -> None:
    """The canary search finds a key in any of its four spellings."""
    key = hashlib.sha256(b"k").digest()
    for spelling in _canaries([], [key]):
        assert [c for c in _canaries(["Ann Example"], [key]) if c in b"xx" + spelling + b"yy"]
    assert _canaries(["Ann Example"], [])[0] in b"name: Ann Example"
