"""Evidence from an Azure confidential VM through its vTPM (runtime ``azure-cvm``).

On Azure the guest does not reach the SEV-SNP or TDX firmware: the paravisor writes an HCL
report (the hardware report, whose report_data binds the "variable data" holding the vTPM
attestation key) into NV index 0x01400001, and the attestation key persisted at 0x81000003
signs TPM2 quotes. The HCL report is not per request, so the session binding (the
``report_data_for`` value, its first 48 bytes: the most a SHA-384 vTPM's TPM2B_DATA holds)
rides in the quote's extraData; the verifier checks the quote is signed by the key the
hardware report binds, and the broker compares that extraData with the binding it
recomputes (``VerifiedEvidence.report_data`` is the extraData for az-*; ``binding_matches``
accepts the 48-byte prefix).

The evidence is Trustee's JSON: ``az-snp-vtpm`` version 1 (``version``, ``hcl_report``,
``tpm_quote``, ``vcek`` from the paravisor's certificate cache) or ``az-tdx-vtpm``
(``hcl_report``, ``tpm_quote``, ``td_quote`` from the host's quoting service).

Configuration (constructor arguments, else the environment, else Azure's defaults):
``tcti`` / WORKBENCH_TPM_TCTI (``device:/dev/tpmrm0``, or ``/dev/tpm0`` without a resource
manager), ``cert_url`` /
WORKBENCH_AZURE_CERT_URL (the THIM endpoint), ``td_quote_url`` / WORKBENCH_AZURE_TD_QUOTE_URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from workbench.attestation.formats.azure_evidence import TEE_BY_REPORT_TYPE, parse_azure_evidence
from workbench.attestation.formats.azure_hcl import HclReport, parse_hcl_report
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.tpm_quote import make_quote
from workbench.attestation.tee import TeeUnavailable, azure_imds
from workbench.attestation.tee.binding import REPORT_DATA_SIZE, TPM_BINDING_SIZE
from workbench.attestation.tee.tpm2_tools import QuoteParts, Tpm2Tools, configured_tcti
from workbench.errors import WorkbenchError

CERT_URL_ENV = "WORKBENCH_AZURE_CERT_URL"
TD_QUOTE_URL_ENV = "WORKBENCH_AZURE_TD_QUOTE_URL"
HCL_REPORT_NV_INDEX = 0x01400001
AK_HANDLE = 0x81000003
# What Azure's own attesters quote: every PCR of the SHA-256 bank.
QUOTE_BANK = "sha256"
QUOTE_PCRS = tuple(range(24))
EVIDENCE_VERSION = 1
# The PCR values are read after the quote; a PCR extended in between makes them disagree
# with the signed digest. Quote again a few times rather than hand out unverifiable evidence.
QUOTE_ATTEMPTS = 3


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _tpm_quote(parts: QuoteParts) -> dict[str, Any]:
    return {"signature": parts.signature.hex(), "message": parts.message.hex(),
            "pcrs": [value.hex() for value in parts.pcrs]}


class AzureVtpmProvider:
    """``get_provider("azure-vtpm", tcti=..., cert_url=..., td_quote_url=...)``."""

    name = "azure-vtpm"

    def __init__(self, *, tcti: str | None = None, cert_url: str | None = None,
                 td_quote_url: str | None = None,
                 timeout_s: float = azure_imds.TIMEOUT_S) -> None:
        self.tcti = tcti or configured_tcti()
        self.cert_url = cert_url or os.environ.get(CERT_URL_ENV) or azure_imds.CERT_URL
        self.td_quote_url = (td_quote_url or os.environ.get(TD_QUOTE_URL_ENV)
                             or azure_imds.TD_QUOTE_URL)
        self.timeout_s = timeout_s
        self._tpm = Tpm2Tools(self.tcti)
        # One quote at a time: the TPM serialises anyway, and tpm2-tools' scratch files are ours.
        self._lock = threading.Lock()
        self._tee: str | None = None

    @property
    def tee(self) -> str:
        """"az-snp-vtpm" or "az-tdx-vtpm", from the HCL report's type (read once)."""
        if self._tee is None:
            with self._lock:
                self._tee = TEE_BY_REPORT_TYPE[self._read_hcl().report_type]
        return self._tee

    def _read_hcl(self) -> HclReport:
        index = f"0x{HCL_REPORT_NV_INDEX:08x}"
        if HCL_REPORT_NV_INDEX not in self._tpm.nv_indices():
            raise TeeUnavailable(
                f"the TPM at {self.tcti} has no NV index {index} (the HCL report): it is not "
                "the vTPM of an Azure confidential VM")
        raw = self._tpm.nv_read(HCL_REPORT_NV_INDEX)
        try:
            return parse_hcl_report(raw)
        except MalformedEvidence as err:
            raise WorkbenchError(f"NV index {index} does not hold an HCL report: {err}") from None

    def _quote(self, report_data: bytes) -> QuoteParts:
        if AK_HANDLE not in self._tpm.handles("persistent"):
            raise TeeUnavailable(
                f"the TPM at {self.tcti} has no attestation key at 0x{AK_HANDLE:08x}: it is not "
                "the vTPM of an Azure confidential VM")
        for _ in range(QUOTE_ATTEMPTS):
            parts = self._tpm.quote(AK_HANDLE, report_data, QUOTE_BANK, QUOTE_PCRS)
            try:
                quote = make_quote(parts.signature, parts.message, list(parts.pcrs))
            except MalformedEvidence as err:
                raise WorkbenchError(f"the vTPM's quote is malformed: {err}") from None
            if not hmac.compare_digest(quote.attest.extra_data, report_data):
                raise WorkbenchError("the vTPM's quote does not carry the report data asked for")
            digest = hashlib.new(QUOTE_BANK, b"".join(parts.pcrs)).digest()
            if hmac.compare_digest(digest, quote.attest.pcr_digest):
                return parts
        raise WorkbenchError(f"the PCRs changed between quote and read {QUOTE_ATTEMPTS} times "
                             "in a row (something keeps extending them); no evidence produced")

    def _snp_members(self, hcl: HclReport) -> dict[str, Any]:
        certification = azure_imds.fetch_certification(self.cert_url, timeout_s=self.timeout_s)
        return {"vcek": _b64url(certification.vcek)}

    def _tdx_members(self, hcl: HclReport) -> dict[str, Any]:
        quote = azure_imds.fetch_td_quote(hcl.hw_report, self.td_quote_url,
                                          timeout_s=self.timeout_s)
        return {"td_quote": _b64url(quote)}

    def evidence(self, report_data: bytes) -> bytes:
        if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
            raise ValueError(f"report data must be exactly {REPORT_DATA_SIZE} bytes")
        with self._lock:
            hcl = self._read_hcl()
            # Azure's vTPM takes at most 48 bytes of qualifying data (binding.py says why).
            parts = self._quote(bytes(report_data[:TPM_BINDING_SIZE]))
        self._tee = TEE_BY_REPORT_TYPE[hcl.report_type]
        endorsement: dict[str, Callable[[HclReport], dict[str, Any]]] = {
            "snp": self._snp_members, "tdx": self._tdx_members}
        document: dict[str, Any] = {
            **({"version": EVIDENCE_VERSION} if hcl.report_type == "snp" else {}),
            "hcl_report": _b64url(hcl.raw),
            "tpm_quote": _tpm_quote(parts),
            **endorsement[hcl.report_type](hcl),
        }
        data = json.dumps(document, separators=(",", ":")).encode("utf-8")
        try:
            parse_azure_evidence(data)
        except MalformedEvidence as err:
            raise WorkbenchError(f"the evidence assembled from the vTPM is malformed: {err}"
                                 ) from None
        return data
