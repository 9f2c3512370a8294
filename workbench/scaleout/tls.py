"""Dask's ``Security`` for the cluster: TLS 1.3 only, both sides present a certificate of the
kernel's CA, and private keys are loaded from memory (an anonymous memfd), never written to a
file: distributed's own in-memory path writes them to a temporary directory."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from typing import Any

from distributed.security import Security


@contextlib.contextmanager
def _memory_file(text: str) -> Iterator[str]:
    fd = os.memfd_create("workbench-scaleout-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, text.encode("ascii"))
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


class ClusterSecurity(Security):
    """Every role uses the same CA and the holder's certificate and key (PEM text)."""

    def __init__(self, ca_pem: str, cert_pem: str, key_pem: str) -> None:
        super().__init__(require_encryption=True, tls_min_version=ssl.TLSVersion.TLSv1_3,
                         tls_ca_file=ca_pem,
                         tls_client_cert=cert_pem, tls_client_key=key_pem,
                         tls_scheduler_cert=cert_pem, tls_scheduler_key=key_pem,
                         tls_worker_cert=cert_pem, tls_worker_key=key_pem)

    def _get_tls_context(self, tls: dict[str, Any], purpose: ssl.Purpose) -> ssl.SSLContext:
        context = ssl.create_default_context(purpose=purpose, cadata=tls["ca_file"])
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        with _memory_file(tls["cert"]) as cert, _memory_file(tls["key"]) as key:
            context.load_cert_chain(cert, key)
        # Mutual: a peer without a certificate of this CA is refused, either side.
        context.verify_mode = ssl.CERT_REQUIRED
        # Peers are addressed by IP; who they are is the certificate, not the host name.
        context.check_hostname = False
        return context

    def __repr__(self) -> str:  # never print keys
        return "ClusterSecurity(TLS 1.3, mutual, kernel CA)"
