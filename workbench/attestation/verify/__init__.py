"""Signatures, certificate chains to pinned roots, collateral and TCB status.

``verify_evidence`` is the one entry point for the key broker and the CLI: it detects the
format (or takes the caller's ``tee``) and hands the bytes to that format's verifier.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from workbench.attestation.formats.detect import detect_tee
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.verify.result import EvidenceRejected, VerifiedEvidence

TEE_CHOICES = ("auto", "sgx", "tdx", "snp", "az-snp-vtpm", "az-tdx-vtpm", "simulated")


class VerifierUnavailable(EvidenceRejected):
    """The verifier for this format is not part of this installation."""


def _load(module: str, function: str) -> Any:
    # The vendor verifiers import heavier modules; load them only for evidence that needs them.
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise VerifierUnavailable(
            "verifier", f"{module}.{function} is not available in this installation ({err})"
        ) from None


def _for(collateral: Any, kind: str) -> Any:
    """A collateral service offers one provider per kind (``dcap``, ``snp``); a loaded
    Intel folder is DCAP collateral only."""
    if hasattr(collateral, "dcap"):
        return getattr(collateral, kind)
    return collateral if kind == "dcap" else None


def _dcap(data: bytes, now: datetime, certs: Sequence[bytes], collateral: Any,
          simulated_keys: Iterable[Any] | None, nonce: bytes | None) -> VerifiedEvidence:
    verify_quote = _load("workbench.attestation.verify.dcap", "verify_quote")
    return verify_quote(data, now=now, collateral=_for(collateral, "dcap"))


def _snp(data: bytes, now: datetime, certs: Sequence[bytes], collateral: Any,
         simulated_keys: Iterable[Any] | None, nonce: bytes | None) -> VerifiedEvidence:
    verify_report = _load("workbench.attestation.verify.snp", "verify_report")
    return verify_report(data, now=now, certs=certs, collateral=_for(collateral, "snp"))


def _simulated(data: bytes, now: datetime, certs: Sequence[bytes], collateral: Any,
               simulated_keys: Iterable[Any] | None, nonce: bytes | None) -> VerifiedEvidence:
    from workbench.attestation.verify.simulated import verify_simulated

    return verify_simulated(data, now=now, trusted_keys=simulated_keys)


def _azure(data: bytes, now: datetime, certs: Sequence[bytes], collateral: Any,
           simulated_keys: Iterable[Any] | None, nonce: bytes | None) -> VerifiedEvidence:
    verify_azure = _load("workbench.attestation.verify.azure", "verify_azure_evidence")
    return verify_azure(data, now=now, nonce=nonce, certs=certs,
                        collateral=_for(collateral, "dcap"),
                        snp_collateral=_for(collateral, "snp"))


VERIFIERS = {"sgx": _dcap, "tdx": _dcap, "snp": _snp, "az-snp-vtpm": _azure,
             "az-tdx-vtpm": _azure, "simulated": _simulated}
# Evidence whose freshness is a nonce the verifier compares itself (the TPM quote's
# extraData); the others carry report data, which appraisal's report-data rule compares.
NONCE_TEES = ("az-snp-vtpm", "az-tdx-vtpm")


def verify_evidence(
    data: bytes,
    *,
    tee: str = "auto",
    now: datetime,
    certs: Sequence[bytes] = (),
    collateral: Any = None,
    simulated_keys: Iterable[Any] | None = None,
    nonce: bytes | None = None,
) -> VerifiedEvidence:
    """Verify evidence of any supported kind.

    ``nonce`` (Azure vTPM evidence only): the TPM quote's extraData must equal it; for other
    kinds it is an error, since their report data is compared by appraisal.

    Raises MalformedEvidence when the bytes are not evidence (of the requested ``tee``),
    EvidenceRejected when a check fails. ``simulated_keys=None`` trusts the local
    development platform key if it exists.
    """
    if tee not in TEE_CHOICES:
        raise ValueError(f"tee must be one of {', '.join(TEE_CHOICES)}, not {tee!r}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    data = bytes(data)
    if tee == "auto":
        kind = detect_tee(data)
    else:
        try:
            detected = detect_tee(data)
        except MalformedEvidence:
            detected = None  # let the requested format's parser say what is wrong
        if detected is not None and detected != tee:
            raise MalformedEvidence(f"evidence is {detected.upper()} evidence, not {tee}")
        kind = tee
    if nonce is not None and kind not in NONCE_TEES:
        raise ValueError(f"a nonce applies to {' and '.join(NONCE_TEES)} evidence, not {kind}; "
                         "compare report data with appraisal's expected_report_data")
    result = VERIFIERS[kind](data, now, certs, collateral, simulated_keys, nonce)
    if result.tee != kind:
        raise MalformedEvidence(f"evidence is {result.tee.upper()} evidence, not {kind}")
    return result


__all__ = ["NONCE_TEES", "TEE_CHOICES", "VerifierUnavailable", "verify_evidence"]
