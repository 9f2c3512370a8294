"""Which value a session's Azure vTPM evidence must carry: the binding of ``runtime-data``.

An Azure confidential VM's HCL report is written once per boot, so the session binding
rides in the TPM quote's extraData. Two schemes are accepted there, one row each of
``SCHEMES``:

* ``workbench``: ``report_data_for(nonce, tee-pubkey, transport-key[, session-key,
  certificate])`` (64 bytes), what the workbench's own kernels bind for every TEE;
* ``trustee-runtime-data``: what a Trustee attester (guest-components ``kbs_protocol``,
  RCAR 0.4.0) binds: SHA-384 over the RFC 8785 (JCS) serialization of
  ``{"additional-evidence": <tee-evidence.additional_evidence>, "nonce": <nonce>,
  "tee-pubkey": <tee-pubkey as sent>}``. SHA-384 because the challenge selects no other
  (Trustee's default). Allowed only for composite ``tee-evidence`` (the only shape such an
  attester sends) and only when ``runtime-data`` carries none of the workbench extensions
  (``transport-key``, ``session-key``, ``session-certificate``), which this scheme does
  not cover, so they would be stated in the token unbound.

Evidence version 2 also repeats the bound value at the start of the HCL runtime data's
``user-data`` (Trustee's attester asks the paravisor for a fresh HCL report with it); that
is checked too. The comparisons run before any signature is verified: they are cheap, and
a mismatch means the evidence is not for this session whatever its signatures say.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.attestation.formats.azure_evidence import AzureEvidence, parse_azure_evidence
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.tee.binding import binding_matches, report_data_for
from workbench.kbs.errors import KbsError
from workbench.protocol.errors import ErrorKind

WORKBENCH = "workbench"
TRUSTEE = "trustee-runtime-data"
# The names of the two comparisons, as refusals and docs give them.
CHECK_QUOTE_NONCE = "tpm-nonce"
CHECK_USER_DATA = "user-data-binding"
# Evidence versions whose HCL user-data repeats the bound value (Trustee's v2 attester).
USER_DATA_VERSIONS = frozenset({2})
# Nesting deeper than a JWK's is not a runtime-data document.
MAX_DEPTH = 8
# RFC 8785 numbers are IEEE doubles: integers are exact only up to here.
MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class SessionInputs:
    """What the session and its ``runtime-data`` give the binding."""

    nonce: str
    tee_pubkey: dict[str, Any]
    transport_key: bytes = b""
    session_key: bytes = b""
    certificate_digest: bytes = b""
    # tee-evidence.additional_evidence of a composite tee-evidence; None: not composite.
    additional_evidence: str | None = None

    @property
    def has_extensions(self) -> bool:
        return bool(self.transport_key or self.session_key or self.certificate_digest)


@dataclass(frozen=True)
class Binding:
    scheme: str
    value: bytes


def _escape(text: str) -> str:
    # RFC 8785 strings are ECMAScript JSON.stringify's: only '"', '\\' and control
    # characters escaped, the rest as UTF-8; json.dumps(ensure_ascii=False) agrees.
    return json.dumps(text, ensure_ascii=False)


def canonical_json(value: Any, depth: int = 0) -> str:
    """RFC 8785 serialization of a JSON value made of objects, arrays, strings, integers,
    booleans and null (runtime-data holds nothing else; floats are refused rather than
    risk a number form the attester did not write)."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return _escape(value)
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError("an integer beyond 2**53 has no exact JSON number form")
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        # Keys sort by UTF-16 code units (RFC 8785 3.2.3), not by code points.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(f"{_escape(k)}:{canonical_json(value[k], depth + 1)}"
                              for k in keys) + "}"
    raise ValueError(f"a {type(value).__name__} has no canonical form here")


def trustee_runtime_digest(nonce: str, tee_pubkey: dict[str, Any],
                           additional_evidence: str) -> bytes:
    """SHA-384 of the canonical runtime-data a Trustee attester binds in its evidence."""
    document = {"additional-evidence": additional_evidence, "nonce": nonce,
                "tee-pubkey": tee_pubkey}
    try:
        text = canonical_json(document)
    except ValueError as err:
        raise KbsError(ErrorKind.INVALID_TEE_PUBKEY,
                       f"runtime-data has no canonical JSON form ({err})") from None
    return hashlib.sha384(text.encode("utf-8")).digest()


def _workbench(inputs: SessionInputs) -> bytes | None:
    return report_data_for(inputs.nonce, inputs.tee_pubkey, inputs.transport_key,
                           inputs.session_key, inputs.certificate_digest)


def _trustee(inputs: SessionInputs) -> bytes | None:
    if inputs.additional_evidence is None or inputs.has_extensions:
        return None
    return trustee_runtime_digest(inputs.nonce, inputs.tee_pubkey, inputs.additional_evidence)


# scheme -> the value it binds for a session (None: the scheme does not apply to it).
SCHEMES: dict[str, Callable[[SessionInputs], bytes | None]] = {
    WORKBENCH: _workbench,
    TRUSTEE: _trustee,
}


# scheme -> whether a quote's extraData carries that scheme's value. The workbench's own
# provider quotes the binding's 48-byte prefix (a SHA-384 vTPM's TPM2B_DATA limit).
CARRIES: dict[str, Callable[[bytes, bytes], bool]] = {
    WORKBENCH: binding_matches,
    TRUSTEE: hmac.compare_digest,
}


def candidates(inputs: SessionInputs) -> list[Binding]:
    """The bindings this session's evidence may carry, in ``SCHEMES`` order."""
    found = []
    for scheme, value_for in SCHEMES.items():
        value = value_for(inputs)
        if value is not None:
            found.append(Binding(scheme, value))
    return found


def expected_for(scheme: str, inputs: SessionInputs) -> bytes:
    """The value ``scheme`` binds for ``inputs`` (a stored session's, on a replica)."""
    value = SCHEMES[scheme](inputs)
    if value is None:
        raise ValueError(f"binding scheme {scheme!r} does not apply to this session")
    return value


def _describe(options: list[Binding]) -> str:
    return " or ".join(
        "report_data_for(nonce, tee-pubkey, transport-key, session-key)" if b.scheme == WORKBENCH
        else "SHA-384 of the canonical runtime-data {additional-evidence, nonce, tee-pubkey} "
             "(Trustee's attester)" for b in options)


def match_binding(evidence: AzureEvidence, options: list[Binding]) -> Binding:
    """The one of ``options`` the parsed evidence carries, or a refusal naming the
    comparison that failed (``tpm-nonce`` or ``user-data-binding``)."""
    extra = evidence.quote.attest.extra_data
    found = next((b for b in options if CARRIES[b.scheme](extra, b.value)), None)
    if found is None:
        raise KbsError(ErrorKind.BINDING_MISMATCH,
                       f"{CHECK_QUOTE_NONCE}: the TPM quote's extraData ({len(extra)} bytes, "
                       f"{extra.hex()[:32]}...) does not bind this session: it must be "
                       f"{_describe(options)} of this challenge")
    if evidence.version in USER_DATA_VERSIONS:
        user_data = bytes.fromhex(evidence.hcl.runtime.user_data or "")
        if not CARRIES[found.scheme](user_data[:len(found.value)], found.value):
            raise KbsError(ErrorKind.BINDING_MISMATCH,
                           f"{CHECK_USER_DATA}: evidence version {evidence.version} must "
                           "repeat the bound value at the start of the HCL runtime data's "
                           "user-data, and it does not (an HCL report made for another "
                           "request)")
    return found


def require_carried(binding: Binding, report_data: bytes) -> None:
    """Refuse verified evidence whose report data does not carry ``binding`` (compared by
    its own scheme: Trustee's value is 48 bytes, the workbench's 64 or its quoted prefix)."""
    if not CARRIES[binding.scheme](bytes(report_data), binding.value):
        raise KbsError(ErrorKind.BINDING_MISMATCH,
                       f"evidence report data does not bind this session: it must be "
                       f"{_describe([binding])} of this challenge")


def bind_azure_evidence(data: bytes, inputs: SessionInputs) -> Binding:
    """The binding Azure vTPM evidence ``data`` carries for this session (see
    ``match_binding``); malformed evidence is refused as such."""
    try:
        evidence = parse_azure_evidence(data)
    except MalformedEvidence as err:
        raise KbsError(ErrorKind.MALFORMED_EVIDENCE,
                       f"tee-evidence is not Azure vTPM evidence: {err}") from None
    return match_binding(evidence, candidates(inputs))


def stored(binding: Binding, additional_evidence: str | None) -> str | None:
    """What the session row keeps so a replica can recompute the binding (None: the
    workbench scheme, which the row's other columns already determine)."""
    if binding.scheme == WORKBENCH:
        return None
    return json.dumps({"scheme": binding.scheme,
                       "additional-evidence": additional_evidence})


def scheme_of(text: str | None) -> tuple[str, str | None]:
    """(scheme, additional evidence) from a row's stored binding."""
    if not text:
        return WORKBENCH, None
    row = json.loads(text)
    return row["scheme"], row.get("additional-evidence")
