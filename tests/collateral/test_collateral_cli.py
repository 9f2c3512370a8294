"""``workbench collateral fetch|import|list`` and ``workbench verify`` with a cache, as an
air-gapped broker's operator uses them: fetch on a connected machine into a folder, import
the folder, verify with no URL at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from collateral_server import pcs_routes

ROOT = Path(__file__).resolve().parents[2]


def workbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ})


def test_fetch_import_list_and_verify_offline(pcs, vectors, tmp_path):
    quote = str(vectors / "tdx" / "trustee-quote-v4.dat")
    carried, broker_cache = tmp_path / "usb", tmp_path / "broker"
    fetched = workbench("collateral", "fetch", quote, "--pcs-url", pcs.url,
                        "--cache", str(carried))
    assert fetched.returncode == 0, fetched.stderr
    assert dict(pcs.counts) == {path: 1 for path in pcs_routes()}
    assert f"fetched {pcs.url}/tdx/certification/v4/tcb?fmspc=" in fetched.stdout

    imported = workbench("collateral", "import", str(carried), "--cache", str(broker_cache))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.count("imported ") == 4

    listed = workbench("collateral", "list", "--json", "--cache", str(broker_cache))
    entries = json.loads(listed.stdout)["entries"]
    assert sorted(e["kind"] for e in entries) == ["crl", "crl", "qe-identity", "tcb-info"]
    assert {e["status"] for e in entries} == {"expired"}  # recorded in 2023

    pcs.stop()  # air-gapped from here on
    verified = workbench("verify", quote, "--collateral-cache", str(broker_cache),
                         "--now", "2023-06-20", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["evidence"]["tcb_status"] == "UpToDate"


def test_verify_refuses_expired_cache_naming_the_url(pcs, vectors, tmp_path):
    quote = str(vectors / "tdx" / "trustee-quote-v4.dat")
    assert workbench("collateral", "fetch", quote, "--pcs-url", pcs.url,
                     "--cache", str(tmp_path)).returncode == 0
    url = pcs.url
    pcs.stop()
    refused = workbench("verify", quote, "--collateral-cache", str(tmp_path), "--json")
    assert refused.returncode == 1
    reason = json.loads(refused.stdout)["reason"]
    assert reason.startswith(f"collateral: TCB info from {url}/tdx/certification/v4/tcb")
    assert "expired at 2023-07-18T08:42:58+00:00" in reason


def test_import_of_a_file_that_is_not_an_entry_is_refused(tmp_path):
    junk = tmp_path / "x.json"
    junk.write_text('{"hello": 1}')
    result = workbench("collateral", "import", str(junk), "--cache", str(tmp_path / "c"))
    assert result.returncode != 0
    assert f"{junk}: not a collateral cache entry" in result.stderr


def test_fetch_without_a_url_is_refused(vectors, tmp_path):
    result = workbench("collateral", "fetch", str(vectors / "tdx" / "trustee-quote-v4.dat"),
                       "--cache", str(tmp_path))
    assert result.returncode != 0
    assert "give the service to fetch from: --pcs-url URL" in result.stderr
