"""Confidential computing enforcement (CCE) policies of confidential containers on ACI.

ACI ships a container group's CCE policy (Rego) base64-encoded in the ARM template's
``confidentialComputeProperties.ccePolicy``; the utility VM's SEV-SNP HOST_DATA is SHA-256
of the decoded policy text. This module only turns a policy file into those policy bytes:
base64 as the template carries it, the plain Rego text ``az confcom acipolicygen`` prints,
or an ARM template holding it. Hashing is ``appraise.cce``'s.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from workbench.attestation.formats import strict_json
from workbench.attestation.formats.errors import MalformedEvidence

FORMS = ("auto", "base64", "text", "arm")
MAX_POLICY_BYTES = 4 * 1024 * 1024
_BASE64 = re.compile(rb"^[A-Za-z0-9+/]+={0,2}$")


def _base64(data: bytes) -> bytes:
    compact = b"".join(data.split())
    if not compact or not _BASE64.match(compact):
        raise MalformedEvidence("CCE policy: not base64 (ACI's ccePolicy is standard base64)")
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as err:
        raise MalformedEvidence(f"CCE policy: invalid base64 ({err})") from None
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvidence("CCE policy: the base64 does not decode to UTF-8 Rego text"
                                ) from None
    return decoded


def _find_cce(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.lower() == "ccepolicy" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_find_cce(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_find_cce(item))
    return found


def _arm(data: bytes) -> bytes:
    try:
        document = strict_json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise MalformedEvidence(f"CCE policy: not an ARM template (JSON: {err})") from None
    found = _find_cce(document)
    if len(found) != 1:
        raise MalformedEvidence(f"CCE policy: the ARM template has {len(found)} ccePolicy "
                                "values; expected exactly one")
    return _base64(found[0].encode("ascii", "replace"))


def _detect(data: bytes) -> str:
    head = data.lstrip()
    if head.startswith(b"{"):
        return "arm"
    if _BASE64.match(b"".join(data.split()) or b"-"):
        return "base64"
    return "text"


def decode_cce_policy(data: bytes, form: str = "auto") -> tuple[bytes, str]:
    """The policy bytes HOST_DATA hashes, and the form they were read in.

    ``text`` is taken byte for byte (a trailing newline changes the hash, as it would in
    the template); ``auto`` reads a JSON object as an ARM template, a single base64 word as
    base64, and anything else as text.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, not {form!r}")
    data = bytes(data)
    if not data:
        raise MalformedEvidence("CCE policy: the file is empty")
    if len(data) > MAX_POLICY_BYTES:
        raise MalformedEvidence(f"CCE policy: larger than {MAX_POLICY_BYTES} bytes")
    chosen = _detect(data) if form == "auto" else form
    if chosen == "arm":
        return _arm(data), chosen
    if chosen == "base64":
        return _base64(data), chosen
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvidence("CCE policy: the text is not UTF-8") from None
    return data, chosen
