"""Bytes to typed structures. No cryptography here, and no imports of the rest of workbench."""

from workbench.attestation.formats.errors import MalformedEvidence

__all__ = ["MalformedEvidence"]
