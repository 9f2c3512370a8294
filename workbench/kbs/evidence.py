"""From the ``tee-evidence`` of an attest request to verified evidence.

Trustee leaves the shape of ``tee-evidence`` to each TEE's verifier. Ours is
``{"evidence": base64(raw quote/report/envelope), "certs": [base64(DER), ...]}``; a bare
base64 string, Trustee's ``{"quote": ...}`` and its composite
``{"primary_evidence": ..., "additional_evidence": ...}`` (primary only) are accepted too.
For the Azure vTPM TEEs the primary evidence may also be Trustee's evidence JSON object
itself (``{"version", "tpm_quote", "hcl_report", "vcek"}`` and the other shapes
``formats.azure_evidence`` reads); it is kept as compact JSON bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.verify import platform_key, verify_evidence
from workbench.attestation.verify.claims import declared
from workbench.attestation.verify.result import EvidenceRejected, VerifiedEvidence
from workbench.errors import InputError, about
from workbench.kbs.errors import KbsError

# Largest decoded evidence; real quotes with certificate chains are a few kilobytes.
MAX_EVIDENCE_BYTES = 128 * 1024
MAX_CERTS = 8
# Keys of a dict tee-evidence that hold the raw evidence, in order of preference.
EVIDENCE_KEYS = ("evidence", "quote")
COMPOSITE_KEY = "primary_evidence"
ADDITIONAL_KEY = "additional_evidence"
# TEEs whose evidence is a JSON document: Trustee's attesters send it as a JSON object.
JSON_EVIDENCE_TEES = frozenset({"az-snp-vtpm", "az-tdx-vtpm"})


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise KbsError("MalformedEvidence", f"{what} must be a non-empty base64 string")
    text = value.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            data = base64.urlsafe_b64decode(padded)
        else:
            data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise KbsError("MalformedEvidence", f"{what} is not valid base64") from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise KbsError("MalformedEvidence", f"{what} is larger than {MAX_EVIDENCE_BYTES} bytes")
    return data


@dataclass(frozen=True)
class RawEvidence:
    data: bytes
    certs: tuple[bytes, ...]
    # additional_evidence of a composite tee-evidence (None: not composite); it is part of
    # what a Trustee attester binds, so it is kept, though never verified.
    additional: str | None = None


def _additional(value: dict[str, Any]) -> str:
    found = value.get(ADDITIONAL_KEY, "")
    if not isinstance(found, str):
        raise KbsError("MalformedEvidence",
                       f"tee-evidence {ADDITIONAL_KEY} must be a string (Trustee sends the "
                       "JSON of the additional evidence as a string)")
    return found


def _json_document(value: dict[str, Any]) -> bytes:
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise KbsError("MalformedEvidence",
                       f"tee-evidence is larger than {MAX_EVIDENCE_BYTES} bytes")
    return data


def decode_tee_evidence(value: Any, tee: str = "") -> RawEvidence:
    """The raw evidence bytes and any certificates carried in ``tee-evidence`` (``tee``:
    the session's TEE, which says whether a JSON object may be the evidence itself)."""
    additional = None
    if isinstance(value, dict) and COMPOSITE_KEY in value:
        additional = _additional(value)
        value = value[COMPOSITE_KEY]
    if isinstance(value, str):
        return RawEvidence(_b64(value, "tee-evidence"), (), additional)
    if isinstance(value, dict) and tee in JSON_EVIDENCE_TEES and "evidence" not in value:
        return RawEvidence(_json_document(value), (), additional)
    if not isinstance(value, dict):
        raise KbsError("MalformedEvidence",
                       'tee-evidence must be {"evidence": base64, "certs": [base64, ...]}')
    key = next((k for k in EVIDENCE_KEYS if k in value), None)
    if key is None:
        raise KbsError("MalformedEvidence", "tee-evidence has no 'evidence' member")
    certs = value.get("certs") or []
    if not isinstance(certs, list) or len(certs) > MAX_CERTS:
        raise KbsError("MalformedEvidence",
                       f"tee-evidence certs must be a list of at most {MAX_CERTS} base64 strings")
    return RawEvidence(
        _b64(value[key], f"tee-evidence {key}"),
        tuple(_b64(c, f"tee-evidence certs[{i}]") for i, c in enumerate(certs)),
        additional,
    )


def _load_public_key(path: str) -> Any:
    try:
        return load_pem_public_key(Path(path).read_bytes())
    except OSError as err:
        raise InputError(about(path, f"cannot read simulated platform key ({err.strerror})")) \
            from None
    except ValueError as err:
        raise InputError(about(path, f"not a PEM public key ({err})")) from None


class _DevKeyWatch:
    """The local development platform key, re-read only when its file changes.

    It may appear after the broker started (a simulated kernel creates it on first use),
    so it is looked up on every verification, but a stat is all that costs.
    """

    def __init__(self) -> None:
        self._stamp: tuple[int, int] | None = None
        self._keys: list[Any] = []
        self._lock = threading.Lock()

    def keys(self) -> list[Any]:
        path = platform_key.public_key_path()
        try:
            info = path.stat()
        except FileNotFoundError:
            return []
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._keys = [load_pem_public_key(path.read_bytes())]
                self._stamp = stamp
            return self._keys


class EvidenceVerifier:
    """``verify_evidence`` with the broker's trust anchors (simulated keys, collateral)."""

    def __init__(self, *, simulated_keys: Sequence[str] = (), collateral_dir: str = "",
                 collateral_service: Any = None) -> None:
        # Configured keys are loaded once; without any, the local dev key is trusted (as
        # verify_evidence's simulated_keys=None would), read from disk only when it changes.
        self._simulated_keys = [_load_public_key(p) for p in simulated_keys]
        self._dev_key = None if simulated_keys else _DevKeyWatch()
        # The collateral service (workbench.attestation.collateral: fetched, cached, CRLs
        # checked) or, offline, a folder of Intel collateral loaded once.
        self._collateral = collateral_service
        if collateral_dir:
            from workbench.attestation.verify.collateral import load_collateral_dir

            self._collateral = load_collateral_dir(collateral_dir)

    def verify(self, raw: RawEvidence, *, tee: str, now: datetime) -> VerifiedEvidence:
        keys = self._dev_key.keys() if self._dev_key is not None else self._simulated_keys
        try:
            return verify_evidence(
                raw.data, tee=tee, now=now, certs=raw.certs, collateral=self._collateral,
                simulated_keys=keys,
            )
        except MalformedEvidence as err:
            raise KbsError("MalformedEvidence", f"tee-evidence is not {tee} evidence: {err}") \
                from None
        except EvidenceRejected as err:
            raise KbsError("EvidenceRejected",
                           f"evidence rejected: {err.check}: {err.reason}") from None


def identity(evidence: VerifiedEvidence) -> dict[str, Any]:
    """The claims that say which kernel this is (for approvers and the audit log)."""
    # Which claims those are is declared per TEE in verify.claims (same order, same names).
    tee_claims = declared(evidence.tee)
    names = tee_claims.identifying if tee_claims else ()
    found = {name: evidence.claims[name] for name in names if name in evidence.claims}
    return {"tee": evidence.tee, "simulated": evidence.simulated, **found}
