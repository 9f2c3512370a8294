"""Analysts end to end (issue 13): real kernels locked by the Python sealed client with or
without a registered analyst's key, against the hospital's broker. The broker releases a
resource restricted to alice only to a session alice certified, on her signed approval,
until she is revoked; the kernel refuses a certificate made for another kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
from cryptography.hazmat.primitives.asymmetric import ec
from kernel_helpers import ROOT, add_dataset, audit

from workbench.client.sealed import SealedKernel
from workbench.demo.environment import demo_policy
from workbench.sealed.certificate import certify, fingerprint, jwk_of
from workbench.sealed.channel import public_point


def _for_alice(site, name: str, alice: str) -> None:
    add_dataset(site, name, policy=demo_policy(site.measurement, sealed_session="required",
                                               analysts=[alice]))


def test_only_alices_session_opens_alices_data(site, start_kernel, tmp_path: Path) -> None:
    alice, key = f"alice-{uuid.uuid4().hex[:6]}", ec.generate_private_key(ec.SECP256R1())
    with site.admin() as admin:
        admin.add_analyst(alice, jwk_of(key.public_key()), ["oncology"])
    first, second = f"first-{alice}", f"second-{alice}"
    _for_alice(site, first, alice)
    _for_alice(site, second, alice)
    code = "import workbench as wb\ndf = wb.open_dataset({!r})\nprint(len(df))"

    operator = SealedKernel(start_kernel().client, approve=True, pins=tmp_path / "pins",
                            timeout_s=120)
    operator.lock()
    refused = operator.execute(code.format(first))
    assert refused.error is not None and refused.error["ename"] == "ReleaseRefused"
    assert "analyst" in refused.error["evalue"]
    assert "not certified by an analyst's key" in refused.error["evalue"]

    analyst = SealedKernel(start_kernel().client, approve=True, pins=tmp_path / "pins",
                           timeout_s=120, analyst_key=key)
    session = analyst.lock().session
    opened = analyst.execute(code.format(first))
    assert opened.status == "ok" and opened.text().strip() == "40"
    # The kernel's own reading of its evidence: bound, session key and certificate included.
    bound = analyst.execute("wb.attest().summary()['binding']['bound']")
    assert bound.data("text/plain") == "True"
    releases = [r for r in audit(site, "release") if r["resource"].startswith(f"{first}/")]
    assert releases and all(r["analyst_approval"] == {
        "mode": "sealed", "session": session, "signed": True, "analyst": alice,
        "analyst_key": fingerprint(jwk_of(key.public_key())),
        "request": r["analyst_approval"]["request"]} for r in releases)

    with site.admin() as admin:
        admin.revoke_analyst(alice)
    revoked = analyst.execute(code.format(second))
    assert revoked.error is not None and f"analyst {alice} was revoked at" \
        in revoked.error["evalue"]


def test_the_kernel_refuses_a_certificate_made_for_another_kernel(start_kernel) -> None:
    kernel = start_kernel()
    kernel.open_comm()
    status = kernel.drain_comm("status")
    analyst, session = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    other_kernel = jwk_of(ec.generate_private_key(ec.SECP256R1()).public_key())
    certificate = certify(analyst, session.public_key(), session.public_key(), other_kernel)
    assert status["sealed"] is None
    kernel.send_comm({"type": "lock", "v": 1,
                      "session_key": public_point(session.public_key()).hex(),
                      "certificate": certificate.to_json()})
    refused = kernel.drain_comm("lock-refused")
    assert refused["reason"].startswith("the lock's session certificate is refused: the "
                                        "session certificate is bound to another kernel")


def test_workbench_run_certifies_with_the_analysts_key(site, tmp_path: Path) -> None:
    """The headless path: `workbench analyst keygen`, the data owner registers the key,
    `workbench run --analyst-key` opens a dataset restricted to that analyst; without the
    key the same notebook is refused, naming the rule."""
    workbench = str(Path(sys.executable).with_name("workbench"))
    key = tmp_path / "me.pem"
    made = subprocess.run([workbench, "analyst", "keygen", "--out", str(key)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    name = f"dana-{uuid.uuid4().hex[:6]}"
    with site.admin() as admin:
        admin.add_analyst(name, json.loads((tmp_path / "me.pem.pub.jwk").read_text()))
    _for_alice(site, f"data-{name}", name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import workbench as wb\n"
                                          f"print(len(wb.open_dataset('data-{name}')))")]
    notebook = tmp_path / "restricted.ipynb"
    nbformat.write(nb, notebook)
    site.repin()
    env = {**os.environ, **site.kernel_env(), "JUPYTER_PATH": str(ROOT)}
    runs = {}
    for label, extra in (("with", ["--analyst-key", str(key)]), ("without", [])):
        runs[label] = subprocess.run([workbench, "run", str(notebook), "--approve", *extra,
                                      "--out", str(tmp_path / f"{label}.ipynb")],
                                     env=env, capture_output=True, text=True, timeout=300)
    assert runs["with"].returncode == 0, runs["with"].stdout + runs["with"].stderr
    assert nbformat.read(tmp_path / "with.ipynb", as_version=4).cells[0].outputs[0]["text"] \
        == "40\n"
    assert runs["without"].returncode == 1
    assert "ReleaseRefused" in runs["without"].stdout
    assert "not certified by an analyst's key" in runs["without"].stdout
