"""A stand-in for Intel PCS v4 and AMD KDS on 127.0.0.1, serving the recorded collateral.

Routes are a table: exact path and query -> (body, headers). Bodies are the real files from
../shared/vectors; headers are the ones the real services send (issuer chains as URL-encoded
PEM, content types). Every request is counted per path and query, so a test can assert that
a cache hit sent nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
TDX = VECTORS / "tdx" / "collateral"
FMSPC = "50806f000000"  # of trustee's TDX v4 quote (tdx/trustee-quote-v4.dat)
JSON = "application/json"
CRL = "application/pkix-crl"


def _chain_header(path: Path) -> str:
    return quote(path.read_text(), safe="")


def pcs_routes() -> dict[str, tuple[bytes, dict[str, str]]]:
    """The PCS v4 answers for trustee's TDX v4 quote, with Intel's header names."""
    tcb_chain = _chain_header(TDX / "tcbInfoIssuerChain.pem")
    qe_chain = _chain_header(TDX / "qeIdentityIssuerChain.pem")
    crl_chain = _chain_header(TDX / "pckCrlIssuerChain.pem")
    return {
        f"/tdx/certification/v4/tcb?fmspc={FMSPC}": (
            (TDX / "sample_tcbInfo_response").read_bytes(),
            {"Content-Type": JSON, "TCB-Info-Issuer-Chain": tcb_chain}),
        "/tdx/certification/v4/qe/identity": (
            (TDX / "sample_qeIdentity_response").read_bytes(),
            {"Content-Type": JSON, "SGX-Enclave-Identity-Issuer-Chain": qe_chain}),
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": (
            (TDX / "pckcrl").read_bytes(),
            {"Content-Type": CRL, "SGX-PCK-CRL-Issuer-Chain": crl_chain}),
        "/sgx/certification/v4/rootcacrl": ((TDX / "rootcrl.der").read_bytes(),
                                            {"Content-Type": CRL}),
    }


class CollateralServer:
    def __init__(self, routes: dict[str, tuple[bytes, dict[str, str]]],
                 delay_s: float = 0.0) -> None:
        self.routes = routes
        self.delay_s = delay_s
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.counts[self.path] += 1
                if server.delay_s:
                    time.sleep(server.delay_s)
                found = server.routes.get(self.path)
                if found is None:
                    self.send_error(404, "no such collateral")
                    return
                body, headers = found
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


SNP = VECTORS / "sev-snp"
MILAN_CHAIN = VECTORS / "roots" / "amd-ask_ark_milan.pem"


def kds_routes(crl: bytes | None) -> dict[str, tuple[bytes, dict[str, str]]]:
    """AMD KDS answers for go-sev-guest's Milan report: its VCEK by chip id and reported
    TCB, the Milan ASK/ARK chain, and ``crl`` as the Milan CRL (no AMD CRL is recorded in
    the vectors, so tests bring their own)."""
    from workbench.attestation.formats.snp import parse_report

    report = parse_report((SNP / "go-sev-guest-attestation.bin").read_bytes())
    tcb = report.tcb("reported", "milan")
    vcek = (f"/vcek/v1/Milan/{report.chip_id.hex()}?blSPL={tcb.bootloader}"
            f"&teeSPL={tcb.tee}&snpSPL={tcb.snp}&ucodeSPL={tcb.microcode}")
    routes = {
        vcek: ((SNP / "go-sev-guest-vcek.der").read_bytes(),
               {"Content-Type": "application/pkix-cert"}),
        "/vcek/v1/Milan/cert_chain": (MILAN_CHAIN.read_bytes(),
                                      {"Content-Type": "application/x-pem-file"}),
    }
    if crl is not None:
        routes["/vcek/v1/Milan/crl"] = (crl, {"Content-Type": CRL})
    return routes
