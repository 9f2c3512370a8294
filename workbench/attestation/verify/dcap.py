"""Verify Intel DCAP quotes (SGX v3, SGX/TDX v4 and v5) and, when given, their collateral.

The checks run in a fixed order (see docs/attestation-dcap.md); the first failure raises
:class:`EvidenceRejected` naming it, with every check run so far. Without collateral the
result proves "this quote was produced by a genuine Intel platform's quoting enclave";
with collateral it also says how current that platform's TCB is (``tcb_status``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from workbench.attestation.formats.dcap import (
    CERT_PCK_CHAIN,
    CERT_TYPE_NAMES,
    EnclaveReport,
    Quote,
    TdReport,
    parse_quote,
)
from workbench.attestation.formats.intel_collateral import EnclaveIdentity, TcbInfo
from workbench.attestation.verify import certs, intel_chain, intel_extensions, intel_tcb, pinned
from workbench.attestation.verify.collateral import (
    PCK_CA_CNS,
    TCB_SIGNING_CN,
    DcapCollateral,
    IntelCrl,
)
from workbench.attestation.verify.intel_chain import CertChain, load_pck_chain
from workbench.attestation.verify.intel_extensions import PckExtensions, pck_extensions
from workbench.attestation.verify.result import (
    CHECK_COLLATERAL,
    CertSummary,
    Check,
    EvidenceRejected,
    VerifiedEvidence,
)

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
PCK_LEAF_CN = "Intel SGX PCK Certificate"
PCK_CHAIN_LENGTH = 3  # PCK certificate, PCK Platform/Processor CA, Intel SGX Root CA

CHECK_HEADER = "quote-header"
CHECK_PCK_CHAIN = "pck-chain"
CHECK_QE_SIGNATURE = "qe-report-signature"
CHECK_QE_BINDING = "qe-report-binding"
CHECK_QUOTE_SIGNATURE = "quote-signature"
CHECK_TCB_INFO_SIGNATURE = "tcb-info-signature"
CHECK_QE_IDENTITY_SIGNATURE = "qe-identity-signature"
CHECK_ROOT_CRL = "root-crl"
CHECK_PCK_CRL = "pck-crl"

# Fetches the collateral for a quote whose PCK chain checked out (quote, PCK extensions,
# PCK chain, time); raises EvidenceRejected naming the source when it cannot.
CollateralProvider = Callable[[Quote, PckExtensions, CertChain, datetime], DcapCollateral]


def _ecdsa_p256_verify(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Verify a raw r||s P-256 signature over ``message`` (SHA-256)."""
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


@lru_cache(maxsize=256)
def _collateral_signed(chain: CertChain, signature: bytes, body: bytes) -> bool:
    # Sound to cache: the outcome depends only on these bytes (see intel_chain). A broker
    # checks the same TCB info and QE identity for every quote until Intel updates them.
    try:
        key = chain.certs[0].public_key()
    except intel_chain.CERT_DECODE_ERRORS:
        return False
    return isinstance(key, ec.EllipticCurvePublicKey) and _ecdsa_p256_verify(key, signature, body)


@lru_cache(maxsize=64)
def _crl_signed(crl: IntelCrl, issuer_der: bytes) -> bool:
    # Cached by the CRL's and the issuer's bytes, for the same reason.
    issuer = x509.load_der_x509_certificate(issuer_der)
    try:
        return crl.crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except intel_chain.CERT_DECODE_ERRORS:
        return False


def clear_caches() -> None:
    """Forget every cached check (benchmarks use it to time a first verification)."""
    intel_chain.clear_caches()
    _collateral_signed.cache_clear()
    _crl_signed.cache_clear()
    _pck_extensions.cache_clear()
    intel_extensions.clear_cache()


@lru_cache(maxsize=64)
def _pck_extensions(chain: CertChain) -> PckExtensions:
    return pck_extensions(chain.certs[0])


@dataclass
class _State:
    quote: Quote
    now: datetime
    chain: CertChain | None = None
    leaf_key: ec.EllipticCurvePublicKey | None = None
    pck: PckExtensions | None = None
    tcb_info: tuple[str, TcbInfo] | None = None
    identity: tuple[str, EnclaveIdentity] | None = None
    # The TCB signing certificates that signed the TCB info and the QE identity (the same
    # one from Intel's PCS, but each comes with its own issuer chain).
    signing_certs: list[x509.Certificate] = field(default_factory=list)
    qe: intel_tcb.QeEvaluation | None = None
    module: intel_tcb.ModuleEvaluation | None = None
    evaluation: intel_tcb.TcbEvaluation | None = None
    collateral: DcapCollateral | None = None
    summaries: tuple[CertSummary, ...] = ()
    checks: list[Check] = field(default_factory=list)

    def run(self, name: str, step: Callable[[_State], str]) -> None:
        try:
            detail = step(self)
        except EvidenceRejected as err:
            failed = Check(err.check, False, err.reason)
            raise EvidenceRejected(err.check, err.reason, (*self.checks, failed)) from None
        self.checks.append(Check(name, True, detail))


# --- Checks on the quote alone -------------------------------------------------------------


def _check_header(state: _State) -> str:
    quote = state.quote
    if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise EvidenceRejected(
            CHECK_HEADER,
            f"QE vendor ID {quote.header.qe_vendor_id.hex()} is not Intel's quoting enclave",
        )
    detail = f"quote v{quote.version}, {quote.tee.upper()}, Intel QE"
    if quote.trailing_size:
        detail += f"; {quote.trailing_size} bytes after the quote ignored (not signed)"
    return detail


def _check_pck_chain(state: _State) -> str:
    cert_data = state.quote.certification
    if cert_data.type != CERT_PCK_CHAIN:
        raise EvidenceRejected(
            CHECK_PCK_CHAIN,
            f"certification data is type {cert_data.type} ({cert_data.type_name}), which "
            "carries no PCK certificate chain: the quote cannot be tied to the pinned "
            "Intel SGX Root CA",
        )
    try:
        chain = load_pck_chain(cert_data.data)
    except ValueError as err:
        raise EvidenceRejected(CHECK_PCK_CHAIN, f"PCK chain does not parse: {err}") from None
    if len(chain) != PCK_CHAIN_LENGTH:
        raise EvidenceRejected(
            CHECK_PCK_CHAIN,
            f"PCK chain has {len(chain)} certificates, expected {PCK_CHAIN_LENGTH} "
            "(PCK certificate, PCK CA, Intel SGX Root CA)",
        )
    facts = intel_chain.check_chain(
        chain, state.now, CHECK_PCK_CHAIN, "PCK chain", ((PCK_LEAF_CN,), PCK_CA_CNS)
    )
    state.summaries = intel_chain.summaries(chain)
    state.chain = chain
    state.leaf_key = facts.leaf_key
    state.pck = _pck_extensions(chain)
    ca = certs.common_name(chain.certs[1])
    return f"{PCK_LEAF_CN} <- {ca} <- pinned Intel SGX Root CA; FMSPC {state.pck.fmspc.hex()}"


def _check_qe_signature(state: _State) -> str:
    key = state.leaf_key
    if key is None:
        raise EvidenceRejected(CHECK_QE_SIGNATURE, "the PCK certificate key is not an EC key")
    if not _ecdsa_p256_verify(key, state.quote.qe_report_signature, state.quote.qe_report.raw):
        raise EvidenceRejected(
            CHECK_QE_SIGNATURE, "QE report signature does not verify with the PCK certificate key"
        )
    return "QE report signed by the PCK key"


def _check_qe_binding(state: _State) -> str:
    quote = state.quote
    digest = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    report_data = quote.qe_report.report_data
    if report_data[:32] != digest:
        raise EvidenceRejected(
            CHECK_QE_BINDING,
            "QE report data does not hold SHA-256(attestation key || QE auth data): the "
            "attestation key is not the one the QE certified",
        )
    if any(report_data[32:]):
        raise EvidenceRejected(CHECK_QE_BINDING, "QE report data bytes 32..63 are not zero")
    return "attestation key bound by the QE report"


def _check_quote_signature(state: _State) -> str:
    quote = state.quote
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + quote.attestation_key
        )
    except ValueError:
        raise EvidenceRejected(
            CHECK_QUOTE_SIGNATURE, "attestation key is not a point on P-256"
        ) from None
    if not _ecdsa_p256_verify(key, quote.signature, quote.signed_data):
        raise EvidenceRejected(
            CHECK_QUOTE_SIGNATURE,
            "quote signature over header and body does not verify with the attestation key",
        )
    return f"header and body ({len(quote.signed_data)} bytes) signed by the attestation key"


# --- Checks with collateral ----------------------------------------------------------------


def _newest_valid(items: list[tuple[str, Any]], now: datetime) -> tuple[str, Any]:
    """Prefer an item valid at ``now``; among equals the newest evaluation data number."""

    def key(item: tuple[str, Any]) -> tuple[bool, int, datetime]:
        value = item[1]
        valid = value.issue_date <= now <= value.next_update
        return (valid, value.tcb_evaluation_data_number, value.issue_date)

    return max(items, key=key)


def _select_tcb_info(state: _State, collateral: DcapCollateral) -> str:
    assert state.pck is not None
    reasons = []
    matching = []
    for name, info in collateral.tcb_infos:
        try:
            intel_tcb.check_tcb_info_applies(info, state.quote, state.pck)
        except EvidenceRejected as err:
            reasons.append(f"{name}: {err.reason}")
        else:
            matching.append((name, info))
    if not matching:
        raise EvidenceRejected(
            intel_tcb.CHECK_TCB_INFO,
            f"no TCB info for this {state.quote.tee.upper()} platform (FMSPC "
            f"{state.pck.fmspc.hex()}) in {collateral.source}; " + "; ".join(reasons),
        )
    state.tcb_info = _newest_valid(matching, state.now)
    name, info = state.tcb_info
    return f"{name}: {info.id} FMSPC {info.fmspc.hex()}, evaluation data number " + str(
        info.tcb_evaluation_data_number
    )


def _check_signed(
    name: str,
    value: TcbInfo | EnclaveIdentity,
    what: str,
    collateral: DcapCollateral,
    now: datetime,
    check: str,
) -> x509.Certificate:
    """Signature by an Intel SGX TCB Signing certificate chained to the pinned root, and
    the collateral's own issue / next-update window. Returns the signing certificate."""
    for chain_name, chain in collateral.signing_chains:
        if _collateral_signed(chain, value.signature, value.signed_body):
            intel_chain.check_chain(
                chain, now, check, f"TCB signing chain {chain_name}", ((TCB_SIGNING_CN,),)
            )
            break
    else:
        files = ", ".join(n for n, _ in collateral.signing_chains)
        raise EvidenceRejected(
            check, f"{what} {name}: signature does not verify with the TCB signing key ({files})"
        )
    if now < value.issue_date:
        raise EvidenceRejected(
            check,
            f"{what} {name} was issued {value.issue_date.isoformat()}, after the evaluation "
            f"time {now.isoformat()}",
        )
    if now > value.next_update:
        raise EvidenceRejected(
            check,
            f"{what} {name} expired: its nextUpdate was {value.next_update.isoformat()} "
            f"(evaluated at {now.isoformat()})",
        )
    return chain.certs[0]


def _check_tcb_info_signature(state: _State, collateral: DcapCollateral) -> str:
    assert state.tcb_info is not None
    name, info = state.tcb_info
    state.signing_certs.append(_check_signed(
        name, info, "TCB info", collateral, state.now, CHECK_TCB_INFO_SIGNATURE
    ))
    return f"signed by Intel SGX TCB Signing; valid until {info.next_update.isoformat()}"


def _check_qe_identity_signature(state: _State, collateral: DcapCollateral) -> str:
    wanted = intel_tcb.QE_IDENTITY_IDS[state.quote.tee]
    matching = [(n, i) for n, i in collateral.qe_identities if i.id == wanted]
    if not matching:
        found = ", ".join(f"{n} ({i.id})" for n, i in collateral.qe_identities)
        raise EvidenceRejected(
            intel_tcb.CHECK_QE_IDENTITY,
            f"no QE identity '{wanted}' for this {state.quote.tee.upper()} quote in "
            f"{collateral.source}; found {found}",
        )
    state.identity = _newest_valid(matching, state.now)
    name, identity = state.identity
    state.signing_certs.append(_check_signed(
        name, identity, "QE identity", collateral, state.now, CHECK_QE_IDENTITY_SIGNATURE))
    return f"{name}: {identity.id}, valid until {identity.next_update.isoformat()}"


def check_crl(crl: IntelCrl, issuer_der: bytes, issuer: str, now: datetime, check: str) -> None:
    """Refuse a CRL not signed by ``issuer`` (given as DER) or outside its update window."""
    if not _crl_signed(crl, issuer_der):
        raise EvidenceRejected(check, f"{crl.name}: signature does not verify with '{issuer}'")
    last_update = crl.crl.last_update_utc
    if now < last_update:
        raise EvidenceRejected(
            check,
            f"{crl.name} was issued {last_update.isoformat()}, after the evaluation "
            f"time {now.isoformat()}",
        )
    next_update = crl.crl.next_update_utc
    if next_update is None or now > next_update:
        when = next_update.isoformat() if next_update else "never set"
        raise EvidenceRejected(
            check,
            f"{crl.name} expired: its nextUpdate was {when} (evaluated at {now.isoformat()})",
        )


def check_not_revoked(crl: IntelCrl, serial: int, label: str, check: str) -> None:
    """Refuse if ``serial`` is listed in ``crl`` (whose signature the caller checked)."""
    revoked = crl.crl.get_revoked_certificate_by_serial_number(serial)
    if revoked is not None:
        raise EvidenceRejected(
            check,
            f"'{label}' (serial {serial:x}) is revoked by {crl.name} "
            f"since {revoked.revocation_date_utc.isoformat()}",
        )


@lru_cache(maxsize=1)
def _pinned_root_der() -> bytes:
    return pinned.intel_sgx_root_der()


def _newest_crl(crls: list[IntelCrl] | tuple[IntelCrl, ...]) -> IntelCrl:
    return max(crls, key=lambda c: c.crl.last_update_utc)


def _check_root_crl(state: _State, collateral: DcapCollateral) -> str:
    if not collateral.root_crls:
        raise EvidenceRejected(
            CHECK_ROOT_CRL,
            f"no Intel SGX Root CA CRL (e.g. rootcrl.der) in {collateral.source}: revocation "
            "of the PCK CA and the TCB signing certificate cannot be checked",
        )
    crl = _newest_crl(collateral.root_crls)
    check_crl(crl, _pinned_root_der(), "Intel SGX Root CA", state.now, CHECK_ROOT_CRL)
    for cert in revocable_by_root(state):
        check_not_revoked(crl, cert.serial_number, certs.common_name(cert), CHECK_ROOT_CRL)
    signers = len(revocable_by_root(state)) - 1
    what = "TCB signing certificate" if signers == 1 else f"{signers} TCB signing certificates"
    return f"{crl.name}: PCK CA and {what} not revoked"


def revocable_by_root(state: _State) -> list[x509.Certificate]:
    """The certificates the root CA CRL must not list: the PCK CA, and each distinct TCB
    signing certificate that signed the TCB info or the QE identity."""
    assert state.chain is not None and state.signing_certs
    found = [state.chain.certs[1]]
    for cert in state.signing_certs:
        if all(cert != other for other in found):
            found.append(cert)
    return found


def _check_pck_crl(state: _State, collateral: DcapCollateral) -> str:
    assert state.chain is not None
    leaf, ca = state.chain.certs[0], state.chain.certs[1]
    ca_name = certs.common_name(ca)
    candidates = [c for c in collateral.pck_crls if c.crl.issuer == leaf.issuer]
    if not candidates:
        raise EvidenceRejected(
            CHECK_PCK_CRL,
            f"no PCK CRL issued by '{ca_name}' (the PCK certificate's issuer) "
            f"in {collateral.source}",
        )
    crl = _newest_crl(candidates)
    check_crl(crl, state.chain.ders[1], ca_name, state.now, CHECK_PCK_CRL)
    check_not_revoked(crl, leaf.serial_number, PCK_LEAF_CN, CHECK_PCK_CRL)
    return f"{crl.name}: PCK certificate not revoked"


def _check_qe_identity(state: _State) -> str:
    assert state.identity is not None
    state.qe = intel_tcb.evaluate_qe_identity(state.identity[1], state.quote)
    level = state.qe.level
    return f"QE ISVSVN {state.quote.qe_report.isv_svn}: {level.status} (level {level.isv_svn})"


def _check_tdx_module(state: _State) -> str:
    assert state.tcb_info is not None
    state.module = intel_tcb.evaluate_tdx_module(state.tcb_info[1], state.quote)
    if state.module.identity_id is None:
        return "TDX module signer and attributes match the TCB info"
    assert state.module.level is not None
    return f"TDX module {state.module.identity_id}: {state.module.level.status}"


def _check_tcb_status(state: _State) -> str:
    assert state.tcb_info is not None and state.pck is not None
    state.evaluation = intel_tcb.evaluate_tcb(
        state.tcb_info[1], state.quote, state.pck, state.qe, state.module
    )
    ev = state.evaluation
    date = ev.platform_level.tcb_date.date().isoformat() if ev.platform_level.tcb_date else "?"
    detail = f"{ev.status} (platform level {ev.platform_status}, TCB date {date})"
    if ev.advisory_ids:
        detail += f"; advisories {', '.join(ev.advisory_ids)}"
    if ev.td_relaunch_advised:
        detail += "; relaunching the TD on the updated TDX module is advised"
    return detail


# --- Claims ---------------------------------------------------------------------------------


def _sgx_claims(body: EnclaveReport) -> dict[str, Any]:
    return {
        "mrenclave": body.mr_enclave.hex(),
        "mrsigner": body.mr_signer.hex(),
        "isvprodid": body.isv_prod_id,
        "isvsvn": body.isv_svn,
        "debug": body.debug,
        "cpusvn": body.cpu_svn.hex(),
        "attributes": body.attributes.hex(),
        "misc_select": body.misc_select.hex(),
        "config_id": body.config_id.hex(),
        "config_svn": body.config_svn,
        "report_data": body.report_data.hex(),
    }


def _tdx_claims(body: TdReport) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "mrtd": body.mr_td.hex(),
        "rtmr0": body.rtmr0.hex(),
        "rtmr1": body.rtmr1.hex(),
        "rtmr2": body.rtmr2.hex(),
        "rtmr3": body.rtmr3.hex(),
        "mrconfigid": body.mr_config_id.hex(),
        "mrowner": body.mr_owner.hex(),
        "mrownerconfig": body.mr_owner_config.hex(),
        "tee_tcb_svn": body.tee_tcb_svn.hex(),
        "td_attributes": body.td_attributes.hex(),
        "debug": body.debug,
        "xfam": body.xfam.hex(),
        "report_data": body.report_data.hex(),
        "mrseam": body.mr_seam.hex(),
        "mrsignerseam": body.mr_signer_seam.hex(),
        "seam_attributes": body.seam_attributes.hex(),
    }
    if body.tee_tcb_svn2 is not None and body.mr_servicetd is not None:
        claims["tee_tcb_svn2"] = body.tee_tcb_svn2.hex()
        claims["mrservicetd"] = body.mr_servicetd.hex()
    return claims


def _claims(state: _State) -> dict[str, Any]:
    quote, pck = state.quote, state.pck
    assert pck is not None
    body = quote.body
    claims = _sgx_claims(body) if isinstance(body, EnclaveReport) else _tdx_claims(body)
    claims["quote_version"] = quote.version
    claims["signer"] = "pck"
    claims["fmspc"] = pck.fmspc.hex()
    claims["pce_svn"] = pck.pce_svn
    claims["qe_svn"] = quote.qe_report.isv_svn
    return claims


def _extra(state: _State) -> dict[str, Any]:
    assert state.pck is not None
    extra: dict[str, Any] = {
        "trailing_bytes": state.quote.trailing_size,
        "certification_data": CERT_TYPE_NAMES[state.quote.certification.type],
        "sgx_type": state.pck.sgx_type_name,
    }
    ev = state.evaluation
    if ev is not None and state.tcb_info is not None:
        level = ev.platform_level
        extra["tcb"] = {
            "tcb_info": state.tcb_info[0],
            "tcb_evaluation_data_number": state.tcb_info[1].tcb_evaluation_data_number,
            "tcb_date": level.tcb_date.isoformat() if level.tcb_date else None,
            "platform_status": str(ev.platform_status),
            "sgx_status": str(ev.sgx_status),
            "qe_status": str(ev.qe.status) if ev.qe else None,
            "tdx_module_status": str(ev.module.status) if ev.module else None,
            "td_relaunch_advised": ev.td_relaunch_advised,
        }
    return extra


def _provided(state: _State, provider: CollateralProvider) -> str:
    assert state.pck is not None and state.chain is not None
    state.collateral = provider(state.quote, state.pck, state.chain, state.now)
    return f"from {state.collateral.source}"


def verify_quote(
    data: bytes, *, now: datetime,
    collateral: DcapCollateral | CollateralProvider | None = None,
) -> VerifiedEvidence:
    """Verify a DCAP quote at time ``now``. Raises MalformedEvidence or EvidenceRejected.

    ``collateral`` is a loaded folder or a provider asked for this quote's collateral
    once the PCK chain is verified (the collateral service)."""
    quote = parse_quote(data)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    state = _State(quote=quote, now=now)
    state.run(CHECK_HEADER, _check_header)
    state.run(CHECK_PCK_CHAIN, _check_pck_chain)
    state.run(CHECK_QE_SIGNATURE, _check_qe_signature)
    state.run(CHECK_QE_BINDING, _check_qe_binding)
    state.run(CHECK_QUOTE_SIGNATURE, _check_quote_signature)
    if callable(collateral):
        provider = collateral
        state.run(CHECK_COLLATERAL, lambda s: _provided(s, provider))
        collateral = state.collateral
    if collateral is not None:
        c = collateral
        state.run(intel_tcb.CHECK_TCB_INFO, lambda s: _select_tcb_info(s, c))
        state.run(CHECK_TCB_INFO_SIGNATURE, lambda s: _check_tcb_info_signature(s, c))
        state.run(CHECK_QE_IDENTITY_SIGNATURE, lambda s: _check_qe_identity_signature(s, c))
        state.run(CHECK_ROOT_CRL, lambda s: _check_root_crl(s, c))
        state.run(CHECK_PCK_CRL, lambda s: _check_pck_crl(s, c))
        state.run(intel_tcb.CHECK_QE_IDENTITY, _check_qe_identity)
        if isinstance(quote.body, TdReport):
            state.run(intel_tcb.CHECK_TDX_MODULE, _check_tdx_module)
        state.run(intel_tcb.CHECK_TCB, _check_tcb_status)
    ev = state.evaluation
    return VerifiedEvidence(
        tee=quote.tee,
        claims=_claims(state),
        report_data=quote.body.report_data,
        checks=tuple(state.checks),
        chain=state.summaries,
        tcb_status=str(ev.status) if ev else None,
        advisory_ids=ev.advisory_ids if ev else (),
        extra=_extra(state),
    )
