"""Intel's TCB rules on real quotes and real TCB info, and on single edited fields.

The signatures are covered elsewhere; here the rules alone run on parsed values, which
also reaches the TDX 1.5 collateral (its signing certificate expired before it was issued,
so end-to-end verification of it refuses as expected).
"""

from __future__ import annotations

import dataclasses

import pytest
from dcap_build import QUOTES

from workbench.attestation.formats.dcap import TdReport, parse_quote
from workbench.attestation.formats.intel_collateral import (
    IsvTcbLevel,
    TcbLevel,
    parse_enclave_identity,
    parse_tcb_info,
)
from workbench.attestation.verify import intel_tcb
from workbench.attestation.verify.intel_chain import load_pck_chain
from workbench.attestation.verify.intel_extensions import pck_extensions
from workbench.attestation.verify.intel_tcb import TcbStatus as S
from workbench.attestation.verify.result import EvidenceRejected


@pytest.fixture(scope="module")
def quotes(vectors):
    return {name: parse_quote((vectors / path).read_bytes()) for name, path in QUOTES.items()}


@pytest.fixture(scope="module")
def tcb_v3(vectors):
    return parse_tcb_info((vectors / "tdx/collateral/sample_tcbInfo_response").read_bytes())


@pytest.fixture(scope="module")
def tcb_15(vectors):
    return parse_tcb_info((vectors / "tdx/collateral/sample_tcbinfo_response_v5").read_bytes())


@pytest.fixture(scope="module")
def td_qe(vectors):
    return parse_enclave_identity(
        (vectors / "tdx/collateral/sample_qeIdentity_response").read_bytes()
    )


def _pck(quote):
    return pck_extensions(load_pck_chain(quote.certification.data).certs[0])


def _with_body(quote, **fields):
    return dataclasses.replace(quote, body=dataclasses.replace(quote.body, **fields))


def _svn(*values: int) -> bytes:
    return bytes(values) + bytes(16 - len(values))


# --- convergence -------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(S))
def test_revoked_qe_or_module_revokes_everything(status):
    assert intel_tcb.converge(status, S.REVOKED) is S.REVOKED


@pytest.mark.parametrize("status", list(S))
def test_up_to_date_qe_or_module_changes_nothing(status):
    assert intel_tcb.converge(status, S.UP_TO_DATE) is status


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (S.UP_TO_DATE, S.OUT_OF_DATE),
        (S.SW_HARDENING_NEEDED, S.OUT_OF_DATE),
        (S.CONFIGURATION_NEEDED, S.OUT_OF_DATE_CONFIGURATION_NEEDED),
        (S.CONFIGURATION_AND_SW_HARDENING_NEEDED, S.OUT_OF_DATE_CONFIGURATION_NEEDED),
        (S.OUT_OF_DATE, S.OUT_OF_DATE),
        (S.OUT_OF_DATE_CONFIGURATION_NEEDED, S.OUT_OF_DATE_CONFIGURATION_NEEDED),
        (S.REVOKED, S.REVOKED),
    ],
)
def test_out_of_date_qe_or_module(platform, expected):
    assert intel_tcb.converge(platform, S.OUT_OF_DATE) is expected


# --- TDX on real data ------------------------------------------------------------------------


def test_tdx15_quote_is_up_to_date(quotes, tcb_15, td_qe):
    quote = quotes["tdx-v5"]
    qe = intel_tcb.evaluate_qe_identity(td_qe, quote)
    ev = intel_tcb.evaluate_tcb(tcb_15, quote, _pck(quote), qe)
    assert ev.module is not None and ev.module.identity_id == "TDX_01"
    assert ev.module.status is S.UP_TO_DATE
    assert ev.status is S.UP_TO_DATE
    assert ev.platform_level is tcb_15.tcb_levels[0]
    assert not ev.td_relaunch_advised


def test_tdx15_module_out_of_date_gives_its_advisories(quotes, tcb_15):
    quote = quotes["trustee-tdx-v5"]  # TDX module 1.x with ISVSVN 5: below Intel's 6
    module = intel_tcb.evaluate_tdx_module(tcb_15, quote)
    identity = next(m for m in tcb_15.tdx_module_identities if m.id == "TDX_01")
    expected = next(lv for lv in identity.tcb_levels if quote.body.tee_tcb_svn[0] >= lv.isv_svn)
    assert module.status is S.OUT_OF_DATE
    assert module.level == expected


def test_trustee_v5_platform_is_below_every_level(quotes, tcb_15):
    quote = quotes["trustee-tdx-v5"]
    with pytest.raises(EvidenceRejected, match="Intel does not support this platform TCB"):
        intel_tcb.evaluate_tcb(tcb_15, quote, _pck(quote), None)


def test_tdx10_module_is_judged_by_the_tdx_module_entry(quotes, tcb_v3):
    quote = quotes["trustee-tdx-v4"]
    assert quote.body.tee_tcb_svn[1] == 0
    module = intel_tcb.evaluate_tdx_module(tcb_v3, quote)
    assert module.identity_id is None and module.level is None
    assert module.status is S.UP_TO_DATE


def test_module_version_without_identity(quotes, tcb_15):
    info = dataclasses.replace(tcb_15, tdx_module_identities=())
    with pytest.raises(EvidenceRejected, match="no module identity TDX_01") as err:
        intel_tcb.evaluate_tdx_module(info, quotes["tdx-v5"])
    assert err.value.check == "tdx-module"


def test_module_isvsvn_below_every_level(quotes, tcb_15):
    quote = _with_body(quotes["tdx-v5"], tee_tcb_svn=_svn(1, 1, 4))
    with pytest.raises(EvidenceRejected, match="ISVSVN 1 is below every level"):
        intel_tcb.evaluate_tdx_module(tcb_15, quote)


def test_mrsignerseam_must_match(quotes, tcb_v3):
    quote = _with_body(quotes["trustee-tdx-v4"], mr_signer_seam=b"\x01" * 48)
    with pytest.raises(EvidenceRejected, match="MRSIGNERSEAM 0101"):
        intel_tcb.evaluate_tdx_module(tcb_v3, quote)


def test_seam_attributes_must_be_zero(quotes, tcb_v3):
    quote = _with_body(quotes["trustee-tdx-v4"], seam_attributes=b"\x01" + bytes(7))
    with pytest.raises(EvidenceRejected, match="SEAM attributes 0100000000000000"):
        intel_tcb.evaluate_tdx_module(tcb_v3, quote)


def test_tdx_info_without_tdx_module_entry(quotes, tcb_v3):
    info = dataclasses.replace(tcb_v3, tdx_module=None)
    with pytest.raises(EvidenceRejected, match="no tdxModule entry"):
        intel_tcb.evaluate_tdx_module(info, quotes["trustee-tdx-v4"])


def test_module_version_makes_svn_bytes_0_and_1_the_modules_business(quotes, tcb_15):
    quote = quotes["tdx-v5"]
    level = tcb_15.tcb_levels[0]
    assert level.tdx_svns is not None
    # Byte 0 below the level's first TDX component: with a module version it still matches.
    low = _svn(level.tdx_svns[0] - 1, 1, *quote.body.tee_tcb_svn[2:4])
    _, tdx = intel_tcb.match_levels(tcb_15.tcb_levels, _pck(quote), low)
    assert tdx is level
    # Without a module version, byte 0 counts and that level is out of reach.
    _, tdx = intel_tcb.match_levels(tcb_15.tcb_levels, _pck(quote), _svn(low[0], 0, *low[2:4]))
    assert tdx is not level


def test_tdx_level_needs_the_tee_tcb_svn(quotes, tcb_15):
    quote = _with_body(quotes["tdx-v5"], tee_tcb_svn=_svn(11, 1, 0))
    with pytest.raises(EvidenceRejected, match="reached by TEE_TCB_SVN"):
        intel_tcb.evaluate_tcb(tcb_15, quote, _pck(quote), None)


def test_relaunch_advised_when_the_platform_runs_a_newer_module(quotes, tcb_15, td_qe):
    identity = next(m for m in tcb_15.tdx_module_identities if m.id == "TDX_01")
    latest_module, older = identity.tcb_levels[0], identity.tcb_levels[1]
    comp2 = tcb_15.tcb_levels[0].tdx_svns[2]
    old = _svn(older.isv_svn, 1, comp2)
    quote = _with_body(quotes["tdx-v5"], tee_tcb_svn=old, tee_tcb_svn2=old)
    qe = intel_tcb.evaluate_qe_identity(td_qe, quote)
    stale = intel_tcb.evaluate_tcb(tcb_15, quote, _pck(quote), qe)
    assert stale.status is S.OUT_OF_DATE and not stale.td_relaunch_advised
    assert stale.advisory_ids == older.advisory_ids

    updated = _svn(latest_module.isv_svn, 1, comp2)
    quote = _with_body(quotes["tdx-v5"], tee_tcb_svn=old, tee_tcb_svn2=updated)
    ev = intel_tcb.evaluate_tcb(tcb_15, quote, _pck(quote), qe)
    assert ev.status is S.OUT_OF_DATE
    assert ev.td_relaunch_advised


# --- QE identity -----------------------------------------------------------------------------


def test_td_qe_identity_matches_real_qe_reports(quotes, td_qe):
    for name in ("tdx-v4", "tdx-v5", "trustee-tdx-v4", "trustee-tdx-v5"):
        qe = intel_tcb.evaluate_qe_identity(td_qe, quotes[name])
        assert qe.status is S.UP_TO_DATE
        assert quotes[name].qe_report.isv_svn >= qe.level.isv_svn


def test_sgx_quote_needs_the_sgx_qe_identity(quotes, td_qe):
    with pytest.raises(EvidenceRejected, match="needs 'QE'"):
        intel_tcb.evaluate_qe_identity(td_qe, quotes["sgx-v3"])


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("mrsigner", b"\x01" * 32, "QE MRSIGNER"),
        ("isv_prod_id", 7, "QE ISVPRODID 2 is not 7"),
        ("miscselect", b"\x01\x00\x00\x00", "QE MISCSELECT"),
        ("attributes", b"\x13" + bytes(15), "QE attributes"),
    ],
)
def test_qe_identity_mismatch(quotes, td_qe, field, value, reason):
    identity = dataclasses.replace(td_qe, **{field: value})
    with pytest.raises(EvidenceRejected, match=reason) as err:
        intel_tcb.evaluate_qe_identity(identity, quotes["tdx-v4"])
    assert err.value.check == "qe-identity"


def test_qe_below_every_level(quotes, td_qe):
    levels = (IsvTcbLevel(99, None, "UpToDate", ()),)
    identity = dataclasses.replace(td_qe, tcb_levels=levels)
    with pytest.raises(EvidenceRejected, match="this QE is not supported"):
        intel_tcb.evaluate_qe_identity(identity, quotes["tdx-v4"])


@pytest.mark.parametrize(
    ("qe_status", "expected"), [("OutOfDate", S.OUT_OF_DATE), ("Revoked", S.REVOKED)]
)
def test_qe_level_worsens_the_platform(quotes, tcb_v3, td_qe, qe_status, expected):
    quote = quotes["trustee-tdx-v4"]
    level = IsvTcbLevel(0, None, qe_status, ("INTEL-SA-TEST",))
    identity = dataclasses.replace(td_qe, tcb_levels=(level,))
    qe = intel_tcb.evaluate_qe_identity(identity, quote)
    ev = intel_tcb.evaluate_tcb(tcb_v3, quote, _pck(quote), qe)
    assert ev.platform_status is S.UP_TO_DATE
    assert ev.status is expected
    assert "INTEL-SA-TEST" in ev.advisory_ids


def test_unrecognised_status_is_refused(quotes, td_qe):
    identity = dataclasses.replace(td_qe, tcb_levels=(IsvTcbLevel(0, None, "Fine", ()),))
    with pytest.raises(EvidenceRejected, match="unrecognised TCB status 'Fine'"):
        intel_tcb.evaluate_qe_identity(identity, quotes["tdx-v4"])


# --- SGX platform levels and applicability -----------------------------------------------------


def _sgx_info(tcb_v3, pck, levels):
    return dataclasses.replace(
        tcb_v3, id="SGX", fmspc=pck.fmspc, tdx_module=None, tcb_levels=tuple(levels)
    )


def test_sgx_quote_takes_the_first_level_its_pck_reaches(quotes, tcb_v3):
    quote = quotes["sgx-v3"]
    pck = _pck(quote)
    above = TcbLevel(
        (pck.sgx_svns[0] + 1, *pck.sgx_svns[1:]), pck.pce_svn, None, None, "UpToDate", ()
    )
    newer_pce = TcbLevel(pck.sgx_svns, pck.pce_svn + 1, None, None, "SWHardeningNeeded", ())
    reached = TcbLevel(pck.sgx_svns, pck.pce_svn, None, None, "OutOfDate", ("INTEL-SA-1",))
    ev = intel_tcb.evaluate_tcb(
        _sgx_info(tcb_v3, pck, (above, newer_pce, reached)), quote, pck, None
    )
    assert ev.status is S.OUT_OF_DATE
    assert ev.platform_level is reached
    assert ev.advisory_ids == ("INTEL-SA-1",)
    assert ev.module is None


def test_sgx_level_statuses_pass_through(quotes, tcb_v3):
    quote = quotes["sgx-v3"]
    pck = _pck(quote)
    for status in S:
        level = TcbLevel(pck.sgx_svns, pck.pce_svn, None, None, str(status), ())
        ev = intel_tcb.evaluate_tcb(_sgx_info(tcb_v3, pck, [level]), quote, pck, None)
        assert ev.status is status


def test_tcb_info_for_another_fmspc(quotes, tcb_v3):
    quote = quotes["trustee-tdx-v4"]
    pck = _pck(quote)
    info = dataclasses.replace(tcb_v3, fmspc=b"\x00" * 6)
    with pytest.raises(EvidenceRejected, match="FMSPC 000000000000 but the PCK certificate"):
        intel_tcb.check_tcb_info_applies(info, quote, pck)


def test_tcb_info_for_another_pce(quotes, tcb_v3):
    quote = quotes["trustee-tdx-v4"]
    info = dataclasses.replace(tcb_v3, pce_id=b"\x00\x01")
    with pytest.raises(EvidenceRejected, match="PCE ID 0001"):
        intel_tcb.check_tcb_info_applies(info, quote, _pck(quote))


def test_tcb_info_applies_to_its_own_platform(quotes, tcb_v3):
    quote = quotes["trustee-tdx-v4"]
    intel_tcb.check_tcb_info_applies(tcb_v3, quote, _pck(quote))
    assert isinstance(quote.body, TdReport)
