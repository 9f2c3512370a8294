"""Azure vTPM evidence envelopes: Trustee's ``az-snp-vtpm`` / ``az-tdx-vtpm`` JSON shapes.

Shapes read (every member named, no others allowed):

- v0 (az-snp-vtpm, no ``version``): ``quote`` (tpm quote), ``report`` (the HCL report as a
  list of byte values), ``vcek`` (PEM);
- v1, v2: ``version``, ``tpm_quote``, ``hcl_report`` (base64url), ``vcek`` (base64url DER);
  v2 differs in what the attester put in the quote's nonce and the runtime data's
  ``user-data`` (both the verifier's challenge), not in its layout;
- az-tdx-vtpm: ``tpm_quote``, ``hcl_report`` and ``td_quote`` (base64url), ``version``
  optional.

The TPM quote inside is ``formats.tpm_quote``'s; which TEE the evidence is for follows from
the HCL report's report type, never from the envelope alone. No cryptography here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from workbench.attestation.formats import azure_hcl_offsets as hcl_off
from workbench.attestation.formats import strict_json
from workbench.attestation.formats.azure_hcl import HclReport, parse_hcl_report
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.tpm_quote import TpmQuote, quote_from_json

# Real envelopes are under 40 KiB (v0 spells every byte as a decimal number).
MAX_ENVELOPE_BYTES = 256 * 1024
TEE_BY_REPORT_TYPE = {"snp": "az-snp-vtpm", "tdx": "az-tdx-vtpm"}
AZURE_TEES = tuple(TEE_BY_REPORT_TYPE.values())
VERSIONS = (1, 2)

# shape -> (required members, optional members)
SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "v0": (frozenset({"quote", "report", "vcek"}), frozenset()),
    "v1": (frozenset({"version", "tpm_quote", "hcl_report", "vcek"}), frozenset()),
    "tdx": (frozenset({"tpm_quote", "hcl_report", "td_quote"}), frozenset({"version"})),
}
_BASE64URL = re.compile(r"^[A-Za-z0-9_\-+/]*={0,2}$")


@dataclass(frozen=True)
class AzureEvidence:
    """One Azure vTPM evidence: the HCL report, the TPM quote, and the hardware endorsement
    the envelope carries (``vcek``: DER or PEM bytes; ``td_quote``: a DCAP quote)."""

    tee: str
    shape: str
    version: int
    hcl: HclReport
    quote: TpmQuote
    vcek: bytes | None
    td_quote: bytes | None


def _bad(member: str, problem: str) -> MalformedEvidence:
    return MalformedEvidence(f"Azure evidence {member}: {problem}")


def _b64(value: Any, member: str) -> bytes:
    # Trustee writes base64url; accept the standard alphabet too, padding optional.
    if not isinstance(value, str) or not _BASE64URL.match(value):
        raise _bad(member, "is not a base64url string")
    text = value.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise _bad(member, f"is not valid base64url ({err})") from None


def _shape(document: dict[str, Any]) -> str:
    keys = set(document)
    if "td_quote" in keys:
        name = "tdx"
    elif "version" in keys:
        name = "v1"
    elif "quote" in keys or "report" in keys:
        name = "v0"
    else:
        raise _bad("shape", f"members {', '.join(sorted(keys)) or '(none)'} are not Trustee's "
                   "az-snp-vtpm (quote, report, vcek; or version, tpm_quote, hcl_report, "
                   "vcek) or az-tdx-vtpm (tpm_quote, hcl_report, td_quote)")
    required, optional = SHAPES[name]
    missing = sorted(required - keys)
    if missing:
        raise _bad("shape", f"lacks {', '.join(missing)}")
    unknown = sorted(keys - required - optional)
    if unknown:
        raise _bad("shape", f"unknown member(s) {', '.join(unknown)}")
    return name


def _version(document: dict[str, Any]) -> int:
    version = document.get("version", 0)
    if version == 0 and "version" not in document:
        return 0
    if isinstance(version, bool) or version not in VERSIONS:
        raise _bad("version", f"{version!r} is not one of {', '.join(map(str, VERSIONS))}")
    return int(version)


def _vcek(value: Any, shape: str) -> bytes:
    if shape == "v0":
        if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
            raise _bad("vcek", "is not a PEM certificate")
        return value.encode("ascii", "replace")
    return _b64(value, "vcek")


def parse_azure_document(document: Any) -> AzureEvidence:
    """Read an evidence JSON value already decoded (as the broker receives it)."""
    if not isinstance(document, dict):
        raise _bad("document", "is not a JSON object")
    shape = _shape(document)
    version = _version(document)
    if shape == "v0":
        raw = document["report"]
        if not isinstance(raw, list) or not all(isinstance(b, int) and 0 <= b <= 255
                                                for b in raw):
            raise _bad("report", "is not a list of byte values")
        hcl_bytes, quote_doc = bytes(raw), document["quote"]
    else:
        hcl_bytes, quote_doc = _b64(document["hcl_report"], "hcl_report"), document["tpm_quote"]
    hcl = parse_hcl_report(hcl_bytes)
    tee = TEE_BY_REPORT_TYPE[hcl.report_type]
    expected = "az-tdx-vtpm" if shape == "tdx" else "az-snp-vtpm"
    if tee != expected:
        raise _bad("hcl_report", f"holds a {hcl.report_type.upper()} report but the envelope is "
                   f"{expected}'s")
    quote = quote_from_json(quote_doc)
    return AzureEvidence(
        tee=tee,
        shape="tdx" if shape == "tdx" else f"v{version}",
        version=version,
        hcl=hcl,
        quote=quote,
        vcek=_vcek(document["vcek"], shape) if "vcek" in document else None,
        td_quote=_b64(document["td_quote"], "td_quote") if "td_quote" in document else None,
    )


def parse_azure_evidence(data: bytes) -> AzureEvidence:
    """Parse Azure vTPM evidence bytes (UTF-8 JSON). An HCL report alone is refused: it is
    not per request, so without the TPM quote nothing shows it is fresh."""
    data = bytes(data)
    if data[:4] == hcl_off.HEADER_SIGNATURE:
        raise _bad("document", "is a bare HCL report: it is written once per boot, so it proves "
                   "nothing fresh; give the evidence JSON with its TPM quote (hcl_report, "
                   "tpm_quote, vcek)")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _bad("document", f"{len(data)} bytes is larger than {MAX_ENVELOPE_BYTES}")
    try:
        document = strict_json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _bad("document", f"is not JSON ({err})") from None
    return parse_azure_document(document)


def azure_tee(data: bytes) -> str | None:
    """"az-snp-vtpm" or "az-tdx-vtpm" when ``data`` looks like Azure vTPM evidence (a JSON
    object with an HCL report member, or a bare HCL report), else None. The parser decides
    whether it is well formed; the bare report's kind is read from its report type."""
    if data[:4] == hcl_off.HEADER_SIGNATURE:
        end = hcl_off.REPORT_TYPE + 4
        kind = int.from_bytes(data[hcl_off.REPORT_TYPE:end], "little") if len(data) >= end else 0
        name = hcl_off.REPORT_TYPES.get(kind, ("snp", 0))[0]
        return TEE_BY_REPORT_TYPE[name]
    head = data.lstrip(b" \t\r\n")
    if not head.startswith(b"{") or len(data) > MAX_ENVELOPE_BYTES:
        return None
    try:
        document = strict_json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if "td_quote" in document and "hcl_report" in document:
        return "az-tdx-vtpm"
    if "hcl_report" in document or ("report" in document and "quote" in document):
        return "az-snp-vtpm"
    return None
