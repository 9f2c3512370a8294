"""SEV-SNP HOST_DATA of an ACI container group: SHA-256 of its CCE policy.

A policy pins it as ``reference_values.snp.host_data`` (the ``snp.host_data`` rule), so
only a utility VM launched with exactly that CCE policy, which says which containers,
commands and mounts may run, gets the keys.
"""

from __future__ import annotations

import hashlib

from workbench.attestation.formats.cce_policy import decode_cce_policy


def cce_host_data(data: bytes, form: str = "auto") -> tuple[str, str]:
    """(HOST_DATA as 64 hex digits, the form the policy was read in)."""
    policy, chosen = decode_cce_policy(data, form)
    return hashlib.sha256(policy).hexdigest(), chosen
