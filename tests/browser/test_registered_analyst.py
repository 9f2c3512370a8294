"""The analyst's browser key, end to end in Chromium (issue 13): the trust panel makes a
non-extractable key in this browser profile and shows its fingerprint; its exported public
JWK has that fingerprint; the data owner registers it (`workbench kbs analyst add`); a
dataset restricted to that analyst is then released to a sealed session this tab locked,
certified and approved with a signature, and the broker's audit names the analyst and the
key. Another profile, whose own key was never registered, is refused with the analyst
rule's reason, in the cell and in the trust panel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from lab_page import (
    NOTEBOOK,
    PANEL,
    DialogAnswerer,
    keep_console,
    open_notebook,
    open_panel,
    output_content,
    run_cells,
    status_word,
    wait_for,
)

from workbench.demo.environment import demo_policy
from workbench.sealed.certificate import fingerprint

pytestmark = pytest.mark.slow

SEALED = "Simulated · Sealed"
TRUST_TAB = ".lm-TabBar-tab[title='Kernel trust: evidence and verdict']"
CODE = "import workbench as wb\ndf = wb.open_dataset({name!r})\nprint('rows', len(df))"


def _restricted_dataset(site, name: str, analyst: str) -> None:
    """A small cohort sealed as ``name``, its keys released only to sealed sessions
    certified by ``analyst`` (as tests/kernel/kernel_helpers.py add_dataset does)."""
    from workbench.demo.assets import PHI_COLUMNS, build_cohort
    from workbench.kernel.catalog import CATALOG_NAME
    from workbench.sealing.keyring import Keyring
    from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, table_key
    from workbench.sealing.table import seal_table

    plain = site.workdir / f"{name}.parquet"
    build_cohort(40, seed=11).to_parquet(plain)
    keyring = Keyring.open(site.workdir / "hospital.keyring")
    sealed = site.data_dir / f"{name}.sealed.parquet"
    seal_table(plain, sealed, protect=PHI_COLUMNS, keyring=keyring, dataset=name)
    plain.unlink()
    policy = demo_policy(site.measurement, sealed_session="required", analysts=[analyst])
    with site.admin() as admin:
        for role in (CLINICAL_ROLE, PHI_ROLE):
            resource = table_key(name, role)
            admin.add_resource(resource, keyring.get_key(resource), policy,
                               require_approval=False, approval_timeout_s=None)
    catalog = site.data_dir / CATALOG_NAME
    document = json.loads(catalog.read_text())
    document["datasets"][name] = {"path": sealed.name, "description": f"restricted to {analyst}"}
    catalog.write_text(json.dumps(document, indent=2))


def _notebook(root: Path, name: str, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = json.loads(NOTEBOOK.read_text())["metadata"]["kernelspec"]
    nbformat.write(nb, root / name)


def _make_key_in_panel(page, lab) -> str:
    """In a fresh profile: open JupyterLab, the trust panel, make the key there; its
    fingerprint as the panel shows it."""
    page.goto(f"{lab.url}/lab?token={lab.token}&reset")
    page.locator(TRUST_TAB).first.click()
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    assert "This browser has no analyst key" in \
        panel.locator("[data-wb='analyst-none']").inner_text()
    panel.locator("[data-wb='analyst-create']").click()
    shown = panel.locator("[data-wb='analyst-key']")
    shown.wait_for()
    return shown.inner_text().strip()


def _register(site, name: str, jwk_file: Path, tmp_path: Path) -> str:
    """The data owner registers the key with the admin CLI; what it printed."""
    token = tmp_path / "admin-token"
    token.write_text(site.admin_token)
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "kbs", "analyst", "add", name,
         "--public-key", str(jwk_file), "--url", site.broker_url,
         "--admin-token-file", str(token)],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _releases(site, after: int) -> list[dict]:
    with site.admin() as admin:
        return [r["payload"] for r in admin.audit(after=after, limit=1000)
                if r["kind"] == "release"]


def _last_seq(site) -> int:
    with site.admin() as admin:
        records = admin.audit(limit=1000)
    return records[-1]["seq"] if records else 0


def test_the_registered_browser_key_opens_the_analysts_data(page, browser, lab, site,
                                                            artifacts: Path,
                                                            tmp_path: Path) -> None:
    site.repin()
    alice = f"alice-{uuid.uuid4().hex[:6]}"
    dataset = f"for-{alice}"
    _restricted_dataset(site, dataset, alice)

    # The fingerprint flow: the panel makes the key and shows its fingerprint ...
    shown = _make_key_in_panel(page, lab)
    assert shown.startswith("SHA256:") and len(shown) == 7 + 43, shown
    note = page.locator(f"{PANEL} [data-wb='analyst-note']").inner_text()
    assert "cannot be exported" in note and "workbench kbs analyst add" in note
    # ... which the browser keeps non-extractable, in IndexedDB.
    stored = page.evaluate("""() => new Promise((resolve, reject) => {
        const open = indexedDB.open('workbench-analyst');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const get = open.result.transaction('keys').objectStore('keys').get('analyst');
          get.onsuccess = async () => {
            const key = get.result.privateKey;
            let exported = 'exported';
            try { await crypto.subtle.exportKey('jwk', key); }
            catch (e) { exported = e.name; }
            resolve({type: key.type, extractable: key.extractable, exported});
          };
        };
      })""")
    assert stored == {"type": "private", "extractable": False, "exported": "InvalidAccessError"}
    # ... and the export is the public JWK with that fingerprint.
    with page.expect_download(timeout=30_000) as download:
        page.locator(f"{PANEL} [data-wb='analyst-export']").click()
    assert download.value.suggested_filename == "analyst-key.pub.jwk"
    jwk_file = tmp_path / "analyst-key.pub.jwk"
    download.value.save_as(jwk_file)
    jwk = json.loads(jwk_file.read_text())
    assert sorted(jwk) == ["crv", "kty", "x", "y"] and jwk["kty"] == "EC"
    assert fingerprint(jwk) == shown
    page.screenshot(path=str(artifacts / "analyst-key-panel.png"))

    # Registration, by the data owner.
    printed = _register(site, alice, jwk_file, tmp_path)
    assert f"registered analyst {alice} {shown}" in printed, printed

    # The walkthrough's step, sealed and certified: the restricted data is released.
    before = _last_seq(site)
    name = "registered-analyst.ipynb"
    _notebook(lab.root, name, CODE.format(name=dataset))
    open_notebook(page, lab, name)
    wait_for(page, lambda: status_word(page) == SEALED, "the kernel to be locked to this tab")
    open_panel(page)
    certified = page.locator(f"{PANEL} [data-wb='sealed-analyst']")
    certified.wait_for()
    assert certified.inner_text() == f"your analyst key {shown}"
    answerer = DialogAnswerer(page, "Release", artifacts, "registered-analyst-dialog")
    run_cells(page, 0, 0, answerer)
    answerer.until(lambda: "rows" in output_content(page, 0) or "Error" in output_content(page, 0),
                   "the restricted dataset to open", timeout_s=240)
    assert output_content(page, 0).strip() == "rows 40", output_content(page, 0)
    # Both of the table's keys (clinical columns, identifiers), each asked in the dialog.
    assert len(answerer.texts) == 2, answerer.texts
    session = page.locator(f"{PANEL} [data-wb='sealed-session']").inner_text().strip()
    releases = [r for r in _releases(site, before) if r["resource"].startswith(f"{dataset}/")]
    assert sorted(r["resource"] for r in releases) == \
        [f"{dataset}/table-key/clinical", f"{dataset}/table-key/phi"], releases
    approvals = [r["analyst_approval"] for r in releases]
    for approval in approvals:
        assert approval == {"mode": "sealed", "session": approval["session"], "signed": True,
                            "analyst": alice, "analyst_key": shown,
                            "request": approval["request"]}, approval
        assert approval["session"].startswith(session) and len(session) == 16
    # One signed request per release.
    assert len({a["request"] for a in approvals}) == 2 and all(a["request"] for a in approvals)
    page.screenshot(path=str(artifacts / "registered-analyst-released.png"))

    # Another browser profile has a key of its own, never registered: refused, the reason
    # naming the analyst rule and its key, in the cell and in the trust panel.
    other = browser.new_context(viewport={"width": 1500, "height": 950})
    other.set_default_timeout(60_000)
    try:
        stranger = other.new_page()
        keep_console(stranger, artifacts / "unregistered-analyst-console.log")
        theirs = _make_key_in_panel(stranger, lab)
        assert theirs != shown
        before = _last_seq(site)
        name = "unregistered-analyst.ipynb"
        _notebook(lab.root, name, CODE.format(name=dataset))
        open_notebook(stranger, lab, name)
        wait_for(stranger, lambda: status_word(stranger) == SEALED, "the stranger's lock")
        dialogs = DialogAnswerer(stranger, "Release", artifacts, "unregistered-analyst-dialog")
        run_cells(stranger, 0, 0, dialogs)
        try:
            dialogs.until(lambda: "Refused" in output_content(stranger, 0)
                          or "rows" in output_content(stranger, 0),
                          "the refusal", timeout_s=240)
        finally:
            stranger.screenshot(path=str(artifacts / "unregistered-analyst-refused.png"))
        error = output_content(stranger, 0)
        assert "ReleaseRefused" in error and "analyst" in error, error
        why = f"unknown analyst: key {theirs} is not registered"
        assert why in error, error
        open_panel(stranger)
        refusals = stranger.locator(f"{PANEL} [data-wb='refusals']")
        refusals.wait_for()
        assert why in refusals.inner_text(), refusals.inner_text()
        assert _releases(site, before) == []
        stranger.screenshot(path=str(artifacts / "unregistered-analyst-refused.png"))
    finally:
        other.close()
