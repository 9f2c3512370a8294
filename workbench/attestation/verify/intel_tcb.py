"""Intel's TCB rules: which TCB info level a platform is at, and what status that gives.

Pure functions over parsed values (quote, PCK extension, TCB info, QE identity); the
signatures over those values are checked elsewhere. The rules follow Intel's Quote
Verification Library (QVL) and the PCS API specification:

* Platform level: the first level (highest first) whose 16 SGX component SVNs are all at
  or below the PCK certificate's and whose PCESVN is at or below the PCK's. For TDX the
  level must also have every TDX component at or below the quote's TEE_TCB_SVN bytes;
  when TEE_TCB_SVN[1] (the TDX module major version) is non-zero, bytes 0 and 1 are
  judged by the matching TDX module identity ("TDX_%02X") instead.
* TDX module: MRSIGNERSEAM must equal the module's mrsigner; SEAM attributes must be zero
  and equal the module's attributes; the module identity's level for ISVSVN =
  TEE_TCB_SVN[0] (TDX 1.5+) may worsen the status (OutOfDate, Revoked).
* QE identity: masked MISCSELECT and ATTRIBUTES, MRSIGNER and ISVPRODID must match; the QE
  level for its ISVSVN may worsen the status the same way.
* TDX 1.5 "relaunch advised" (TEE_TCB_SVN2 shows the platform already runs an up-to-date
  module and only this TD is old): Intel reports it as its own status; here the status
  stays OutOfDate / OutOfDateConfigurationNeeded and ``td_relaunch_advised`` is set.

Levels that match nothing mean Intel does not support this TCB: that is a rejection,
not a status.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workbench.attestation.formats.dcap import EnclaveReport, Quote, TdReport
from workbench.attestation.formats.intel_collateral import (
    EnclaveIdentity,
    IsvTcbLevel,
    TcbInfo,
    TcbLevel,
)
from workbench.attestation.verify.intel_extensions import PckExtensions
from workbench.attestation.verify.result import EvidenceRejected


class TcbStatus(StrEnum):
    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"


S = TcbStatus
PLATFORM_STATUSES = frozenset(S)
# Module identity and QE identity levels only ever carry these.
ISV_STATUSES = frozenset({S.UP_TO_DATE, S.OUT_OF_DATE, S.REVOKED})
CONFIGURATION_STATUSES = frozenset(
    {
        S.CONFIGURATION_NEEDED,
        S.CONFIGURATION_AND_SW_HARDENING_NEEDED,
        S.OUT_OF_DATE_CONFIGURATION_NEEDED,
    }
)

# What an OutOfDate QE or TDX module does to the platform's status (Intel QVL
# convergeTcbStatusWith*): statuses not listed are kept as they are.
OUT_OF_DATE_CONVERGENCE: dict[TcbStatus, TcbStatus] = {
    S.UP_TO_DATE: S.OUT_OF_DATE,
    S.SW_HARDENING_NEEDED: S.OUT_OF_DATE,
    S.CONFIGURATION_NEEDED: S.OUT_OF_DATE_CONFIGURATION_NEEDED,
    S.CONFIGURATION_AND_SW_HARDENING_NEEDED: S.OUT_OF_DATE_CONFIGURATION_NEEDED,
}

QE_IDENTITY_IDS = {"sgx": "QE", "tdx": "TD_QE"}
TCB_INFO_IDS = {"sgx": "SGX", "tdx": "TDX"}
TDX_MODULE_ID_PREFIX = "TDX_"

CHECK_TCB_INFO = "tcb-info"
CHECK_TCB = "tcb-status"
CHECK_QE_IDENTITY = "qe-identity"
CHECK_TDX_MODULE = "tdx-module"


@dataclass(frozen=True)
class QeEvaluation:
    status: TcbStatus
    level: IsvTcbLevel


@dataclass(frozen=True)
class ModuleEvaluation:
    identity_id: str | None  # None for a TDX 1.0 module judged by the tdxModule entry
    level: IsvTcbLevel | None

    @property
    def status(self) -> TcbStatus:
        return S(self.level.status) if self.level else S.UP_TO_DATE


@dataclass(frozen=True)
class TcbEvaluation:
    status: TcbStatus
    advisory_ids: tuple[str, ...]
    platform_level: TcbLevel
    platform_status: TcbStatus
    sgx_status: TcbStatus
    module: ModuleEvaluation | None
    qe: QeEvaluation | None
    td_relaunch_advised: bool = False


def converge(status: TcbStatus, other: TcbStatus) -> TcbStatus:
    """Combine a platform status with a QE or TDX module status."""
    if other is S.REVOKED:
        return S.REVOKED
    if other is S.OUT_OF_DATE:
        return OUT_OF_DATE_CONVERGENCE.get(status, status)
    return status


def _status(text: str, allowed: frozenset[TcbStatus], check: str, what: str) -> TcbStatus:
    try:
        status = S(text)
    except ValueError:
        status = None
    if status not in allowed:
        raise EvidenceRejected(check, f"{what} has unrecognised TCB status '{text}'")
    return status


def _svns_at_least(actual: bytes | tuple[int, ...], required: tuple[int, ...], start: int) -> bool:
    return all(actual[i] >= required[i] for i in range(start, len(required)))


def tdx_module_version(body: TdReport) -> int:
    return body.tee_tcb_svn[1]


def check_tcb_info_applies(info: TcbInfo, quote: Quote, pck: PckExtensions) -> None:
    """The TCB info describes this platform: same TEE, FMSPC and PCE ID (QVL 4.1.2.4.9-10)."""
    expected = TCB_INFO_IDS[quote.tee]
    if info.id != expected:
        raise EvidenceRejected(
            CHECK_TCB_INFO,
            f"TCB info is for {info.id} platforms but the quote is from {quote.tee.upper()}",
        )
    if info.fmspc != pck.fmspc:
        raise EvidenceRejected(
            CHECK_TCB_INFO,
            f"TCB info is for FMSPC {info.fmspc.hex()} but the PCK certificate says "
            f"{pck.fmspc.hex()}",
        )
    if info.pce_id != pck.pce_id:
        raise EvidenceRejected(
            CHECK_TCB_INFO,
            f"TCB info is for PCE ID {info.pce_id.hex()} but the PCK certificate says "
            f"{pck.pce_id.hex()}",
        )


def evaluate_tdx_module(info: TcbInfo, quote: Quote) -> ModuleEvaluation:
    """Check MRSIGNERSEAM / SEAM attributes and find the module's own TCB level."""
    body = quote.body
    assert isinstance(body, TdReport)
    version = tdx_module_version(body)
    identity = None
    if info.tdx_module is None:
        raise EvidenceRejected(CHECK_TDX_MODULE, "the TDX TCB info has no tdxModule entry")
    signer, attributes = info.tdx_module.mrsigner, info.tdx_module.attributes
    if quote.version > 3 and version > 0:
        wanted = f"{TDX_MODULE_ID_PREFIX}{version:02X}"
        identity = next((m for m in info.tdx_module_identities if m.id == wanted), None)
        if identity is None:
            known = ", ".join(m.id for m in info.tdx_module_identities) or "none"
            raise EvidenceRejected(
                CHECK_TDX_MODULE,
                f"TEE_TCB_SVN names TDX module major version {version} but the TCB info has "
                f"no module identity {wanted} (has: {known})",
            )
        signer, attributes = identity.mrsigner, identity.attributes
    if body.mr_signer_seam != signer:
        raise EvidenceRejected(
            CHECK_TDX_MODULE,
            f"MRSIGNERSEAM {body.mr_signer_seam.hex()} is not the TDX module signer "
            f"{signer.hex()} the TCB info names",
        )
    # Intel requires SEAM attributes to be all zero, and to equal the listed attributes.
    if any(body.seam_attributes) or body.seam_attributes != attributes:
        raise EvidenceRejected(
            CHECK_TDX_MODULE,
            f"SEAM attributes {body.seam_attributes.hex()} are not zero / not the TCB info's "
            f"{attributes.hex()}",
        )
    if identity is None:
        return ModuleEvaluation(None, None)
    isv_svn = body.tee_tcb_svn[0]
    level = next((lv for lv in identity.tcb_levels if isv_svn >= lv.isv_svn), None)
    if level is None:
        raise EvidenceRejected(
            CHECK_TDX_MODULE,
            f"TDX module {identity.id} ISVSVN {isv_svn} is below every level Intel lists: "
            "this module version is not supported",
        )
    _status(level.status, ISV_STATUSES, CHECK_TDX_MODULE, f"TDX module {identity.id} level")
    return ModuleEvaluation(identity.id, level)


def evaluate_qe_identity(identity: EnclaveIdentity, quote: Quote) -> QeEvaluation:
    """Match the QE report against Intel's QE identity (QVL 4.1.2.9) and find its level."""
    report: EnclaveReport = quote.qe_report
    expected_id = QE_IDENTITY_IDS[quote.tee]
    if identity.id != expected_id:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE identity is for '{identity.id}' but a {quote.tee.upper()} quote needs "
            f"'{expected_id}'",
        )
    masked_misc = bytes(
        a & m for a, m in zip(report.misc_select, identity.miscselect_mask, strict=True)
    )
    if masked_misc != identity.miscselect:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE MISCSELECT {report.misc_select.hex()} masked with "
            f"{identity.miscselect_mask.hex()} is not {identity.miscselect.hex()}",
        )
    masked_attr = bytes(
        a & m for a, m in zip(report.attributes, identity.attributes_mask, strict=True)
    )
    if masked_attr != identity.attributes:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE attributes {report.attributes.hex()} masked with "
            f"{identity.attributes_mask.hex()} are not {identity.attributes.hex()}",
        )
    if report.mr_signer != identity.mrsigner:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE MRSIGNER {report.mr_signer.hex()} is not Intel's {identity.mrsigner.hex()}",
        )
    if report.isv_prod_id != identity.isv_prod_id:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE ISVPRODID {report.isv_prod_id} is not {identity.isv_prod_id}",
        )
    level = next((lv for lv in identity.tcb_levels if report.isv_svn >= lv.isv_svn), None)
    if level is None:
        raise EvidenceRejected(
            CHECK_QE_IDENTITY,
            f"QE ISVSVN {report.isv_svn} is below every level of the QE identity: "
            "this QE is not supported",
        )
    status = _status(level.status, ISV_STATUSES, CHECK_QE_IDENTITY, "QE identity level")
    return QeEvaluation(status, level)


def match_levels(
    levels: tuple[TcbLevel, ...], pck: PckExtensions, tee_tcb_svn: bytes | None
) -> tuple[TcbLevel | None, TcbLevel | None]:
    """Return (SGX level, TDX level): the first levels the platform reaches (QVL 4.1.2.4.17).

    For SGX quotes ``tee_tcb_svn`` is None and the TDX level is always None.
    """
    sgx_level = None
    tdx_start = 2 if tee_tcb_svn is not None and tee_tcb_svn[1] > 0 else 0
    for level in levels:
        if not (_svns_at_least(pck.sgx_svns, level.sgx_svns, 0) and pck.pce_svn >= level.pce_svn):
            continue
        if tee_tcb_svn is None:
            return level, None
        sgx_level = sgx_level or level
        if level.tdx_svns is not None and _svns_at_least(tee_tcb_svn, level.tdx_svns, tdx_start):
            return sgx_level, level
    return sgx_level, None


def _relaunch_advised(
    body: TdReport,
    info: TcbInfo,
    sgx: TcbStatus,
    tdx: TcbStatus,
    module: ModuleEvaluation,
) -> bool:
    """TDX 1.5: is the TD merely older than a module the platform already runs?"""
    svn2 = body.tee_tcb_svn2
    if svn2 is None or not info.tcb_levels:
        return False
    if sgx not in (
        S.UP_TO_DATE,
        S.SW_HARDENING_NEEDED,
        S.CONFIGURATION_NEEDED,
        S.CONFIGURATION_AND_SW_HARDENING_NEEDED,
    ):
        return False
    if tdx not in (S.OUT_OF_DATE, S.OUT_OF_DATE_CONFIGURATION_NEEDED):
        return False
    if module.status is not S.OUT_OF_DATE:
        return False
    latest = info.tcb_levels[0]
    if latest.tdx_svns is None or svn2[2] < latest.tdx_svns[2]:
        return False
    if svn2[1] == 0:
        return svn2[0] >= latest.tdx_svns[0]
    wanted = f"{TDX_MODULE_ID_PREFIX}{svn2[1]:02X}"
    identity = next((m for m in info.tdx_module_identities if m.id == wanted), None)
    if identity is None or not identity.tcb_levels:
        return False
    return svn2[0] >= identity.tcb_levels[0].isv_svn


def _merge_advisories(*groups: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for advisory in group:
            seen.setdefault(advisory, None)
    return tuple(seen)


def evaluate_tcb(
    info: TcbInfo,
    quote: Quote,
    pck: PckExtensions,
    qe: QeEvaluation | None,
    module: ModuleEvaluation | None = None,
) -> TcbEvaluation:
    """The platform's TCB status from TCB info, PCK extension, quote and the QE and TDX
    module evaluations (the module one is computed here when not given)."""
    body = quote.body
    is_tdx = isinstance(body, TdReport)
    if is_tdx and module is None:
        module = evaluate_tdx_module(info, quote)
    tee_tcb_svn = body.tee_tcb_svn if isinstance(body, TdReport) else None
    sgx_level, tdx_level = match_levels(info.tcb_levels, pck, tee_tcb_svn)
    if sgx_level is None:
        raise EvidenceRejected(
            CHECK_TCB,
            f"no TCB level of FMSPC {info.fmspc.hex()} (evaluation data number "
            f"{info.tcb_evaluation_data_number}) is reached by the PCK certificate's TCB "
            f"(SGX components {list(pck.sgx_svns)}, PCESVN {pck.pce_svn}): Intel does not "
            "support this platform TCB",
        )
    sgx_status = _status(sgx_level.status, PLATFORM_STATUSES, CHECK_TCB, "the SGX TCB level")
    if not is_tdx:
        level, status = sgx_level, sgx_status
    else:
        if tdx_level is None:
            raise EvidenceRejected(
                CHECK_TCB,
                f"no TCB level of FMSPC {info.fmspc.hex()} is reached by TEE_TCB_SVN "
                f"{bytes(tee_tcb_svn or b'').hex()}: Intel does not support this TDX TCB",
            )
        level = tdx_level
        status = _status(tdx_level.status, PLATFORM_STATUSES, CHECK_TCB, "the TDX TCB level")
    platform_status = status
    relaunch = False
    if module is not None:
        status = converge(status, module.status)
        assert isinstance(body, TdReport)
        relaunch = (
            status is not S.REVOKED
            and _relaunch_advised(body, info, sgx_status, status, module)
            and (qe is None or qe.status is S.UP_TO_DATE)
        )
        if relaunch and (sgx_status in CONFIGURATION_STATUSES or status in CONFIGURATION_STATUSES):
            status = S.OUT_OF_DATE_CONFIGURATION_NEEDED
    if qe is not None:
        status = converge(status, qe.status)
    return TcbEvaluation(
        status=status,
        advisory_ids=_merge_advisories(
            level.advisory_ids,
            module.level.advisory_ids if module and module.level else (),
            qe.level.advisory_ids if qe else (),
        ),
        platform_level=level,
        platform_status=platform_status,
        sgx_status=sgx_status,
        module=module,
        qe=qe,
        td_relaunch_advised=relaunch,
    )
