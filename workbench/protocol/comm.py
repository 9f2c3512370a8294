"""The names the kernel and its frontends share (docs/comm-protocol.md).

The kernel's comm target, the version every comm message carries, and the MIME type of the
evidence card in notebook outputs: the kernel sends them, the lab extension and Python
clients (``workbench.client``) read them.
"""

from __future__ import annotations

COMM_TARGET = "workbench.attestation"
COMM_VERSION = 1
ATTESTATION_MIME_TYPE = "application/vnd.workbench.attestation+json"
