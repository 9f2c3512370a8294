"""The hardware endorsement an Azure confidential VM gets from its host's metadata service.

SEV-SNP: the paravisor's certificate cache ("THIM"), ``GET <cert_url>`` with the header
``Metadata: true``, answers JSON with ``vcekCert`` (PEM, this chip's VCEK at its current
TCB), ``certificateChain`` (PEM, ASK then ARK), ``tcbm`` (the TCB the VCEK is for, hex) and
``cacheControl``. TDX: ``POST <td_quote_url>`` with ``{"report": base64url(TD report)}``
answers ``{"quote": base64url(TD quote)}``: the host's quoting enclave signs the TD report.

The metadata service lives on a link-local address that a proxy cannot reach, so the
process's proxy settings are ignored. Every refusal names the endpoint and the cause.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from workbench.attestation.tee import TeeUnavailable
from workbench.attestation.verify.certs import load_pem_bundle
from workbench.errors import WorkbenchError

CERT_URL = "http://169.254.169.254/metadata/THIM/amd/certification"
TD_QUOTE_URL = "http://169.254.169.254/acc/tdquote"
METADATA_HEADERS = {"Metadata": "true"}
# The service is on the VM's own host; seconds without an answer mean it is not there.
TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 256 * 1024
THIM_MEMBERS = ("vcekCert", "certificateChain", "tcbm")


class EndpointUnavailable(TeeUnavailable):
    """The metadata endpoint does not answer (not an Azure VM, or the address is blocked)."""


@dataclass(frozen=True)
class Certification:
    """The THIM answer: the VCEK (DER), its issuers (DER, ASK then ARK), its TCB."""

    vcek: bytes
    chain: tuple[bytes, ...]
    tcbm: str


def _request(method: str, url: str, what: str, timeout_s: float, **kwargs: Any) -> Any:
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            response = client.request(method, url, headers=METADATA_HEADERS, **kwargs)
    except httpx.HTTPError as err:
        raise EndpointUnavailable(
            f"cannot reach Azure's {what} endpoint at {url} ({type(err).__name__}: {err}): "
            "this is not an Azure confidential VM, or the metadata address is blocked") from None
    if response.status_code != 200:
        raise EndpointUnavailable(f"Azure's {what} endpoint at {url} answered HTTP "
                                  f"{response.status_code}: {response.text[:200]!r}")
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise WorkbenchError(f"{url}: answer of {len(response.content)} bytes is larger than "
                             f"{MAX_RESPONSE_BYTES}")
    try:
        document = json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as err:
        raise WorkbenchError(f"{url}: the {what} answer is not JSON ({err})") from None
    if not isinstance(document, dict):
        raise WorkbenchError(f"{url}: the {what} answer is not a JSON object")
    return document


def _certificates(pem: Any, url: str, member: str) -> tuple[bytes, ...]:
    if not isinstance(pem, str):
        raise WorkbenchError(f"{url}: {member} is not a PEM string")
    try:
        # AMD's VCEKs have serial number 0; the shared loader expects exactly that warning.
        certs = load_pem_bundle(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as err:
        raise WorkbenchError(f"{url}: {member} holds no PEM certificate ({err})") from None
    return tuple(cert.public_bytes(Encoding.DER) for cert in certs)


def fetch_certification(url: str = CERT_URL, *, timeout_s: float = TIMEOUT_S) -> Certification:
    """This chip's VCEK and its chain from the paravisor's certificate cache."""
    document = _request("GET", url, "certificate", timeout_s)
    missing = [m for m in THIM_MEMBERS if m not in document]
    if missing:
        raise WorkbenchError(f"{url}: the certificate answer lacks {', '.join(missing)} "
                             f"(members: {', '.join(sorted(document)) or 'none'})")
    vcek = _certificates(document["vcekCert"], url, "vcekCert")
    if len(vcek) != 1:
        raise WorkbenchError(f"{url}: vcekCert holds {len(vcek)} certificates, not one")
    tcbm = document["tcbm"]
    if not isinstance(tcbm, str):
        raise WorkbenchError(f"{url}: tcbm is not a string")
    return Certification(vcek[0], _certificates(document["certificateChain"], url,
                                                "certificateChain"), tcbm)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def fetch_td_quote(td_report: bytes, url: str = TD_QUOTE_URL, *,
                   timeout_s: float = TIMEOUT_S) -> bytes:
    """A TD quote over ``td_report`` from the host's quoting service."""
    document = _request("POST", url, "TD quote", timeout_s,
                        json={"report": _b64url(bytes(td_report))})
    quote = document.get("quote")
    if not isinstance(quote, str) or not quote:
        raise WorkbenchError(f"{url}: the TD quote answer has no 'quote' string")
    try:
        return base64.urlsafe_b64decode(quote + "=" * (-len(quote) % 4))
    except (binascii.Error, ValueError) as err:
        raise WorkbenchError(f"{url}: 'quote' is not base64url ({err})") from None
