"""A software TPM (Debian's swtpm) shaped like an Azure confidential VM's vTPM, and a
loopback stand-in for the paravisor's certificate cache (THIM).

``Swtpm`` starts ``swtpm socket --tpm2`` on 127.0.0.1 and seeds it with tpm2-tools the way
Azure's paravisor leaves the vTPM: a restricted RSA-2048 signing key (RSASSA, SHA-256)
persisted at 0x81000003 and an HCL report in NV index 0x01400001. The key is swtpm's own,
not the HCLAkPub of the report: that is the one thing only a real Azure CVM can supply.

The certificate stand-in answers ``GET /metadata/THIM/amd/certification`` (header
``Metadata: true``, else HTTP 400 as IMDS does) with THIM's JSON members, built from real
certificates in the vectors: no recorded THIM response exists in ../shared/vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from workbench.attestation.tee.azure_vtpm import AK_HANDLE, HCL_REPORT_NV_INDEX
from workbench.attestation.verify.amd_extensions import parse_amd_extensions
from workbench.attestation.verify.certs import load_certificate, load_pem_bundle

TOOLS = ("swtpm", "tpm2_createprimary", "tpm2_evictcontrol", "tpm2_nvdefine", "tpm2_nvwrite",
         "tpm2_readpublic", "tpm2_getcap", "tpm2_nvread", "tpm2_quote")
THIM_PATH = "/metadata/THIM/amd/certification"
START_TIMEOUT_S = 10.0
# swtpm's NV indices hold at most this (TPM2_PT_NV_INDEX_MAX); Azure's hold 2600 bytes.
SWTPM_NV_INDEX_MAX = 2048


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"swtpm/tpm2-tools not installed ({', '.join(missing)} not on PATH; "
                    "Debian packages swtpm and tpm2-tools)")


def _free_port_pair() -> int:
    """A port P with P and P+1 free (swtpm's TPM and control channels; the TCTI expects
    the control channel at P+1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


class Swtpm:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.port = _free_port_pair()
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["swtpm", "socket", "--tpm2",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--tpmstate", f"dir={self.state}", "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"swtpm exited: {self.process.stderr.read().decode()}")
            try:
                self.tool("tpm2_getcap", "handles-persistent")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.05)
        raise RuntimeError(f"swtpm did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tool(self, name: str, *args: str, data: bytes | None = None) -> bytes:
        return subprocess.run([name, "-T", self.tcti, *args], input=data, capture_output=True,
                              check=True, timeout=30).stdout

    def persist_ak(self) -> bytes:
        """Create a restricted RSASSA-SHA256 signing key and persist it where Azure's AK is;
        returns its public key (PEM)."""
        with tempfile.TemporaryDirectory() as scratch:
            context = os.path.join(scratch, "ak.ctx")
            self.tool("tpm2_createprimary", "-C", "o", "-G", "rsa2048:rsassa-sha256:null",
                      "-g", "sha256", "-a", "fixedtpm|fixedparent|sensitivedataorigin|"
                      "userwithauth|restricted|sign|noda", "-c", context)
            self.tool("tpm2_evictcontrol", "-C", "o", "-c", context, f"0x{AK_HANDLE:08x}")
            pem = os.path.join(scratch, "ak.pem")
            self.tool("tpm2_readpublic", "-c", f"0x{AK_HANDLE:08x}", "-f", "pem", "-o", pem)
            return Path(pem).read_bytes()

    def write_nv(self, data: bytes, index: int = HCL_REPORT_NV_INDEX) -> None:
        self.tool("tpm2_nvdefine", f"0x{index:08x}", "-C", "o", "-s", str(len(data)),
                  "-a", "ownerread|ownerwrite")
        self.tool("tpm2_nvwrite", "-C", "o", "-i", "-", f"0x{index:08x}", data=data)


@contextmanager
def running_swtpm(state: Path) -> Iterator[Swtpm]:
    require_tools()
    tpm = Swtpm(state)
    tpm.start()
    try:
        yield tpm
    finally:
        tpm.stop()


def tcbm_of(vcek_der: bytes) -> str:
    """THIM's ``tcbm``: the VCEK's TCB as 16 hex digits, microcode SPL first, bootloader
    last (the reported_tcb u64, most significant byte first)."""
    spl = parse_amd_extensions(load_certificate(vcek_der)).spl
    tcb = bytes([spl.get("bootloader", 0), spl.get("tee", 0), 0, 0, 0, 0, spl.get("snp", 0),
                 spl.get("microcode", 0)])
    return int.from_bytes(tcb, "little").to_bytes(8, "big").hex().upper()


def thim_response(pem_file: Path) -> dict[str, Any]:
    """THIM's JSON for a PEM file holding the VCEK then its chain (ASK, ARK)."""
    certs = load_pem_bundle(pem_file.read_bytes())
    pems = [c.public_bytes(Encoding.PEM).decode() for c in certs]
    return {"vcekCert": pems[0], "tcbm": tcbm_of(certs[0].public_bytes(Encoding.DER)),
            "certificateChain": "".join(pems[1:]), "cacheControl": "86400"}


class MetadataServer:
    """A loopback HTTP server answering THIM's path (and any other path given)."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.routes = routes
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append({"method": method, "path": self.path,
                                        "headers": dict(self.headers), "body": body})
                if self.headers.get("Metadata") != "true":
                    status, payload = 400, {"error": "Bad request. Required metadata header "
                                                     "not specified"}
                else:
                    status, payload = server.routes.get((method, self.path),
                                                        (404, {"error": "Not found"}))
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
