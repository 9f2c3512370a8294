"""A full session leaves no key material in any message or log, and no plaintext on disk.

One kernel, with a frontend on the comm, does everything an analyst does (attest, confirm,
open every column, load the model, score, hit a refusal and a traceback). Then every
message sent or received, the kernel's own output, the broker's log and every file the
kernel wrote under its HOME and TMPDIR are searched for each released key in raw, hex,
base64 and base64url form (and for the kernel's ephemeral private key); TMPDIR must stay
empty and no file may hold a patient's record number.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from kernel_helpers import RunningKernel, add_dataset, approve

from workbench.demo.assets import build_cohort
from workbench.demo.environment import DATASET, MODEL, demo_policy
from workbench.sealing.keyring import Keyring
from workbench.sealing.resources import CLINICAL_ROLE, PHI_ROLE, file_keyset, table_key


def encodings(secret: bytes) -> list[bytes]:
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(secret)
        forms += [text, text.rstrip(b"=")]
    return forms


def secrets_of(site) -> dict[str, bytes]:
    ring = Keyring.open(site.workdir / "hospital.keyring")
    found = {r: ring.get_key(r) for r in (table_key(DATASET, CLINICAL_ROLE),
                                           table_key(DATASET, PHI_ROLE), file_keyset(MODEL))}
    keyset = json.loads(found[file_keyset(MODEL)])
    value = keyset["key"][0]["keyData"]["value"]
    found["model keyset value"] = base64.b64decode(value)
    found["model AES key"] = base64.b64decode(value)[-32:]
    return found


def haystacks(kernel, site, dirs: list[Path]) -> dict[str, bytes]:
    stacks = {"kernel messages": json.dumps(kernel.messages, default=str).encode(),
              "kernel stdout/stderr": kernel.log.read_bytes(),
              "broker log": site.log.read_bytes()}
    for directory in dirs:
        for path in directory.rglob("*"):
            if path.is_file():
                stacks[str(path)] = path.read_bytes()
    return stacks


@pytest.fixture(scope="module")
def session(start_kernel, site, tmp_path_factory):
    home = tmp_path_factory.mktemp("analyst-home")
    tmp = tmp_path_factory.mktemp("analyst-tmp")
    private = tmp_path_factory.mktemp("for-the-test-only") / "ephemeral.jwk"
    add_dataset(site, "leak-check-refused", policy=demo_policy("1" * 96, id="nobody"))
    data_before = sorted(p.name for p in site.data_dir.iterdir())
    kernel = start_kernel(HOME=str(home), TMPDIR=str(tmp))
    kernel.open_comm()
    cells = [
        "import workbench as wb\nreport = wb.attest()\nreport",
        "model = wb.load_model('risk-model')\nmodel",
        "df = wb.open_dataset('cohort')\ndf.head()",
        "scores = model.predict(df)\nscores.describe()",
        "scan = wb.scan_dataset('cohort', batch_rows=64)\nlen(model.predict(scan))",
        "wb.open_dataset('leak-check-refused')",
        "model.predict(['not a table'])",
        "wb.status()",
        # The test needs the private key to search for it; it goes to a file, never a message.
        "from workbench.kernel.state import current_state\n"
        f"open({str(private)!r}, 'w').write(current_state()._key.export_private())",
    ]
    outcomes = [kernel.execute(code, on_comm=approve()) for code in cells]
    return kernel, outcomes, home, tmp, private, data_before


def test_the_session_did_the_real_work(session):
    _kernel, outcomes, *_ = session
    assert [o.ename for o in outcomes] == [None] * 5 + ["ReleaseRefused", "TypeError"] + \
        [None] * 2
    assert len(outcomes[2].comm_of("released")) == 2  # clinical and PHI keys
    assert "569" in outcomes[4].data("text/plain")


def test_no_key_material_in_messages_logs_or_files(session, site):
    kernel, _outcomes, home, tmp, private, _ = session
    keys = secrets_of(site)
    keys["ephemeral private key (d)"] = base64.urlsafe_b64decode(
        json.loads(private.read_text())["d"] + "==")
    stacks = haystacks(kernel, site, [home, tmp])
    # The search finds keys where they are: the owner's keyring holds them in base64.
    keyring = (site.workdir / "hospital.keyring").read_bytes()
    assert all(any(form in keyring for form in encodings(keys[r])) for r in list(keys)[:3])
    assert len(kernel.messages) > 50 and stacks["kernel messages"]
    leaks = [f"{name} in {where}" for name, secret in keys.items()
             for where, stack in stacks.items()
             if any(form in stack for form in encodings(secret))]
    assert leaks == []


def test_no_plaintext_on_disk(session, site):
    _kernel, _outcomes, home, tmp, _private, data_before = session
    assert list(tmp.rglob("*")) == []
    assert sorted(p.name for p in site.data_dir.iterdir()) == data_before
    blobs = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    # Patient identifiers as the sealed cohort holds them (same seed as the hospital's).
    cohort = build_cohort(569, seed=7)
    for value in list(cohort["mrn"][:50]) + list(cohort["name"][:50]):
        assert value.encode() not in blobs, f"{value} written under {home}"


def test_cell_sources_stay_in_memory(site, tmp_path):
    """IPython writes every cell's source to history.sqlite under the profile (mode 0644);
    a confidential kernel's history lives in memory only, and still works there."""
    home = tmp_path / "home"
    home.mkdir()
    canary = f"Patient-{uuid.uuid4().hex}"
    site.repin()
    # Started here, not by the fixture: the test stops it itself, before looking at disk.
    kernel = RunningKernel(site.kernel_env(HOME=str(home), IPYTHONDIR=str(home / ".ipython")),
                           tmp_path / "kernel.log")
    outcome = kernel.execute(f"name = {canary!r}\nlen(name)")
    assert outcome.error is None, outcome.evalue
    recalled = kernel.execute("%history -l 1")
    assert canary in recalled.stdout  # the session's own history still answers
    kernel.shutdown()  # IPython's history thread writes its last batch on exit
    written = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert [str(p) for p, data in written.items() if canary.encode() in data] == []
    assert not [p for p in written if p.name.startswith("history.sqlite")]


def test_the_profile_runs_no_code_in_a_confidential_kernel(site, tmp_path):
    """Whoever can write the machine's IPython profile (config files are Python, startup
    files and exec_lines run in the user namespace) gets no code into the kernel."""
    profile = tmp_path / "ipython" / "profile_default"
    (profile / "startup").mkdir(parents=True)
    marks = {name: tmp_path / f"ran-{name}" for name in ("config", "startup", "exec_lines")}
    (profile / "ipython_kernel_config.py").write_text(
        f"open({str(marks['config'])!r}, 'w').close()\n"
        f"c.IPKernelApp.exec_lines = [\"open({str(marks['exec_lines'])!r}, 'w').close()\"]\n")
    (profile / "startup" / "00-hook.py").write_text(
        f"open({str(marks['startup'])!r}, 'w').close()\nHOOKED = True\n")
    site.repin()
    kernel = RunningKernel(site.kernel_env(IPYTHONDIR=str(tmp_path / "ipython")),
                           tmp_path / "kernel.log")
    try:
        outcome = kernel.execute("print('HOOKED' in globals())")
    finally:
        kernel.shutdown()
    assert outcome.error is None and outcome.stdout.strip() == "False"
    assert [name for name, mark in marks.items() if mark.exists()] == []
    # The same profile does run in a stock IPython kernel: the test can fail.
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3",
                                       env={**site.kernel_env(),
                                            "IPYTHONDIR": str(tmp_path / "ipython")})
    try:
        client.execute_interactive("pass", timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert all(mark.exists() for mark in marks.values())
