"""The walkthrough's "hospital's side" shows real commands: run as written, on the demo's own
plaintext, against the hospital the demo prepared, they find everything already published."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import nbformat

from workbench.demo.assets import build_assets
from workbench.demo.headless import notebook_path


def hospital_commands() -> list[list[str]]:
    nb = nbformat.read(notebook_path(), as_version=4)
    [cell] = [c for c in nb.cells if c.cell_type == "markdown"
              and c.source.startswith("## 1. The hospital's side")]
    block = re.search(r"```\n(.*?)```", cell.source, re.S).group(1)
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()]


def test_the_notebooks_commands_reproduce_the_demos_published_state(owner):
    commands = hospital_commands()
    assert [c[:3] for c in commands] == [["workbench", "keyring", "new"],
                                         ["workbench", "publish", "table"],
                                         ["workbench", "publish", "model"],
                                         ["workbench", "catalog", "list"]]
    build_assets(owner.tmp, rows=569, seed=7)
    (owner.tmp / "policy.json").write_text(json.dumps(owner.site.policy))
    (owner.tmp / "hospital.keyring").symlink_to(owner.keyring)
    before = {name: owner.snapshot(name) for name in ("cohort", "risk-model")}
    # The keyring exists already: creating it again is refused, and changes nothing.
    outputs = []
    for command in commands:
        result = subprocess.run([owner.cli_path, *command[1:]], cwd=owner.tmp,
                                capture_output=True, text=True, env=owner.env(), timeout=180)
        outputs.append(result)
    assert "already exists; refusing to overwrite a keyring" in outputs[0].stderr
    for result, what in ((outputs[1], "table 'cohort'"), (outputs[2], "model 'risk-model'")):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{what} is already published as "), result.stdout
    assert {name: owner.snapshot(name) for name in ("cohort", "risk-model")} == before
    listing = outputs[3].stdout.splitlines()
    assert listing[0].split()[:4] == ["KIND", "NAME", "FILE", "RESOURCES"]
    assert any(line.split()[:4] == ["dataset", "cohort", "cohort.sealed.parquet",
                                    "cohort/table-key/clinical,cohort/table-key/phi"]
               for line in listing)
    assert any(line.split()[:4] == ["model", "risk-model", "risk-model.sealed",
                                    "risk-model/file-keyset/main"] for line in listing)
