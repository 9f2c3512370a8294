"""The cache shared by processes: two real `kbs serve` brokers over one cache folder, and
concurrent first verifications in two processes making one request per item.

The recorded collateral expired in 2023 and a broker evaluates at the real time, so the
brokers refuse it; what shows the sharing is *how* the second refuses: it found the entry
the first broker wrote (with that broker's URL and nextUpdate) while the service was down.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
from collateral_server import CollateralServer, pcs_routes

from workbench.protocol.rcar import PROTOCOL_VERSION

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "kbs"))
from kbs_helpers import running_broker  # noqa: E402

TCB_PATH = "/tdx/certification/v4/tcb?fmspc=50806f000000"


def _ec_key() -> dict:
    from jwcrypto.jwk import JWK

    return {**JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True),
            "alg": "ECDH-ES+A256KW"}


def _attest(url: str, quote: bytes) -> tuple[int, str]:
    with httpx.Client(base_url=url, timeout=60) as http:
        nonce = http.post("/kbs/v0/auth", json={"version": PROTOCOL_VERSION, "tee": "tdx",
                                                 "extra-params": ""}).json()["nonce"]
        response = http.post("/kbs/v0/attest", json={
            "runtime-data": {"nonce": nonce, "tee-pubkey": _ec_key()},
            "tee-evidence": {"evidence": base64.b64encode(quote).decode()}})
    return response.status_code, response.json()["detail"]


def test_two_brokers_share_one_cache(pcs, tdx_quote, tmp_path):
    cache = tmp_path / "collateral"
    settings = {"collateral_pcs_urls": [pcs.url], "collateral_cache_dir": str(cache)}
    url = pcs.url
    with running_broker(tmp_path / "a", **settings) as first, \
            running_broker(tmp_path / "b", **settings) as second:
        status, detail = _attest(first.url, tdx_quote)
        assert status == 401
        assert detail == (f"evidence rejected: collateral: TCB info from {url}{TCB_PATH} "
                          "expired: its nextUpdate is 2023-07-18T08:42:58+00:00 (evaluated at "
                          + detail.split("(evaluated at ", 1)[1])
        assert pcs.counts[TCB_PATH] == 1
        pcs.stop()
        status, detail = _attest(second.url, tdx_quote)
    assert status == 401
    assert detail.startswith(f"evidence rejected: collateral: TCB info from {url}{TCB_PATH} "
                             "expired at 2023-07-18T08:42:58+00:00")
    assert f"fetching it again failed: {url}{TCB_PATH}: unreachable" in detail


def test_concurrent_first_verifications_in_two_processes_fetch_once(vectors, tdx_quote,
                                                                   tmp_path):
    server = CollateralServer(pcs_routes(), delay_s=0.5)
    quote = str(vectors / "tdx" / "trustee-quote-v4.dat")
    command = [sys.executable, "-m", "workbench.cli", "verify", quote, "--pcs-url",
               server.url, "--collateral-cache", str(tmp_path), "--now", "2023-06-20"]
    try:
        runs = [subprocess.Popen(command, cwd=ROOT, env={**os.environ}, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(2)]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
    finally:
        server.stop()
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("UpToDate" in out for out in outputs)
    assert dict(server.counts) == {path: 1 for path in pcs_routes()}
