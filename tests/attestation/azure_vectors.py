"""Shared helpers of the Azure vTPM tests: the vectors as SOURCES.md lists them, and ways to
re-pack an evidence document after editing one part (a broken binding)."""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.attestation.formats import azure_hcl_offsets as off

# Every VCEK here is valid from 2023 to 2030; a fixed time keeps the tests reproducible.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
CHALLENGE = b"challenge"
# The v2 evidence's nonce (Trustee's test challenge, 48 bytes).
V2_NONCE = bytes.fromhex("982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9a"
                         "a398f647caa2338748cd0fd9f5f819ef")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def evidence(vectors: Path, version: str) -> dict[str, Any]:
    return json.loads((vectors / f"azure/trustee-snp/evidence-{version}.json").read_text())


def hcl_of(document: dict[str, Any]) -> bytes:
    return unb64u(document["hcl_report"])


def with_hcl(document: dict[str, Any], hcl: bytes) -> dict[str, Any]:
    return {**document, "hcl_report": b64u(hcl)}


def variable_data(hcl: bytes) -> bytes:
    (size,) = struct.unpack_from("<I", hcl, off.VARIABLE_DATA_SIZE)
    return hcl[off.VARIABLE_DATA:off.VARIABLE_DATA + size]


def replace_variable_data(hcl: bytes, new: bytes) -> bytes:
    """The HCL report with ``new`` variable data, sizes updated, the report itself unchanged
    (so its report_data no longer binds the variable data)."""
    head = bytearray(hcl[:off.VARIABLE_DATA])
    struct.pack_into("<I", head, off.VARIABLE_DATA_SIZE, len(new))
    struct.pack_into("<I", head, off.DATA_SIZE, off.REQUEST_DATA_HEADER_SIZE + len(new))
    struct.pack_into("<I", head, off.REPORT_SIZE, off.VARIABLE_DATA + len(new))
    body = bytes(head) + new
    return body + bytes(max(len(hcl) - len(body), 0))
