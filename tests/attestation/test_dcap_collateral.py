"""Intel collateral: loading a folder, and verifying quotes with it at fixed times.

Times: go-tdx-guest's collateral (tdx/collateral) was issued in June 2023 and its TCB
Signing certificate expired 2025-05-21, so everything in it is valid together only in a
window around 2023-06-20; at the real current time it must be refused as expired.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from dcap_build import QUOTES, collateral_dir

from workbench.attestation.formats.intel_collateral import parse_tcb_info
from workbench.attestation.verify import dcap
from workbench.attestation.verify.collateral import load_collateral_dir
from workbench.attestation.verify.result import EvidenceRejected
from workbench.errors import InputError

INSIDE = datetime(2023, 6, 20, tzinfo=UTC)
ALL_CHECKS = [
    "quote-header",
    "pck-chain",
    "qe-report-signature",
    "qe-report-binding",
    "quote-signature",
    "tcb-info",
    "tcb-info-signature",
    "qe-identity-signature",
    "root-crl",
    "pck-crl",
    "qe-identity",
    "tdx-module",
    "tcb-status",
]


@pytest.fixture(scope="module")
def tdx_dir(vectors):
    return vectors / "tdx" / "collateral"


@pytest.fixture(scope="module")
def tdx_collateral(tdx_dir):
    return load_collateral_dir(tdx_dir)


@pytest.fixture(scope="module")
def signing_chain(tdx_dir):
    return tdx_dir / "tcbInfoIssuerChain.pem"


@pytest.fixture(scope="module")
def quotes(vectors):
    return {name: (vectors / path).read_bytes() for name, path in QUOTES.items()}


def _rejected(data, now, collateral) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as info:
        dcap.verify_quote(data, now=now, collateral=collateral)
    return info.value


# --- loading --------------------------------------------------------------------------------


def test_tdx_folder_loads_by_content(tdx_collateral, tdx_dir):
    names = {n.rsplit("/", 1)[-1] for n, _ in tdx_collateral.tcb_infos}
    assert names == {"sample_tcbInfo_response", "sample_tcbinfo_response_v5"}
    assert [i.id for _, i in tdx_collateral.qe_identities] == ["TD_QE"]
    assert {n.rsplit("/", 1)[-1] for n, _ in tdx_collateral.signing_chains} == {
        "qeIdentityIssuerChain.pem",
        "tcbInfoIssuerChain.pem",
    }
    assert [c.name.rsplit("/", 1)[-1] for c in tdx_collateral.pck_crls] == ["pckcrl"]
    assert [c.name.rsplit("/", 1)[-1] for c in tdx_collateral.root_crls] == ["rootcrl.der"]
    assert tdx_collateral.source == str(tdx_dir)


def test_signed_body_is_the_exact_bytes_of_the_response(tdx_dir, vectors):
    for path in (tdx_dir / "sample_tcbInfo_response", vectors / "sgx/collateral/tcbInfo.json"):
        raw = path.read_bytes()
        info = parse_tcb_info(raw)
        assert raw.startswith(b'{"tcbInfo":' + info.signed_body + b',"signature":"')


def test_sgx_folder_needs_a_signing_chain(vectors):
    with pytest.raises(InputError, match="no TCB signing chain") as info:
        load_collateral_dir(vectors / "sgx" / "collateral")
    assert str(vectors / "sgx" / "collateral") in str(info.value)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_sgx_collateral_signatures_verify_with_the_tcb_signing_chain(
    vectors, signing_chain, as_bytes
):
    chain = signing_chain.read_bytes() if as_bytes else signing_chain
    collateral = load_collateral_dir(vectors / "sgx" / "collateral", issuer_chain=chain)
    (_, chain_value), *_ = collateral.signing_chains
    signed = [*collateral.tcb_infos, *collateral.qe_identities]
    assert len(signed) == 2
    for _name, value in signed:
        assert dcap._collateral_signed(chain_value, value.signature, value.signed_body)


def test_missing_signing_chain_file(vectors, tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_collateral_dir(vectors / "sgx" / "collateral", issuer_chain=tmp_path / "none.pem")


def test_folder_without_tcb_info(tdx_dir, tmp_path):
    folder = collateral_dir(
        tmp_path / "c", tdx_dir, omit=("sample_tcbInfo_response", "sample_tcbinfo_response_v5")
    )
    with pytest.raises(InputError, match="no TCB info"):
        load_collateral_dir(folder)


def test_folder_without_qe_identity(tdx_dir, tmp_path):
    folder = collateral_dir(tmp_path / "c", tdx_dir, omit=("sample_qeIdentity_response",))
    with pytest.raises(InputError, match="no QE identity"):
        load_collateral_dir(folder)


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder of Intel collateral"):
        load_collateral_dir(tmp_path / "missing")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"tcbInfo": {"version": 3', "not valid JSON"),
        (b'{"hello": 1}', "must be a PCS response"),
        (b'{"tcbInfo": {}, "tcbInfo": {}, "signature": "00"}', "appears twice"),
        (b'{"tcbInfo": {"version": 9}, "signature": "' + b"00" * 64 + b'"}', "version 9"),
        (b"\x00\x01binary", "not recognised as Intel collateral"),
    ],
)
def test_bad_file_is_named(tdx_dir, tmp_path, content, reason):
    folder = collateral_dir(tmp_path / "c", tdx_dir, add={"broken.bin": content})
    with pytest.raises(InputError, match=reason) as info:
        load_collateral_dir(folder)
    assert str(folder / "broken.bin") in str(info.value)


def test_readme_is_ignored(tdx_dir, tmp_path):
    folder = collateral_dir(tmp_path / "c", tdx_dir, add={"README.md": b"# notes\n"})
    assert len(load_collateral_dir(folder).tcb_infos) == 2


def test_chain_that_starts_at_the_root(tdx_dir, signing_chain, tmp_path):
    pem = signing_chain.read_bytes()
    root_first = pem[pem.index(b"-----BEGIN", 1) :]
    folder = collateral_dir(tmp_path / "c", tdx_dir, add={"root.pem": root_first})
    with pytest.raises(InputError, match="starts at 'Intel SGX Root CA'"):
        load_collateral_dir(folder)


def test_hex_encoded_crl_is_accepted(tdx_dir, tmp_path):
    hexed = (tdx_dir / "pckcrl").read_bytes().hex().encode()
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={"pckcrl": hexed})
    collateral = load_collateral_dir(folder)
    assert collateral.pck_crls[0].der == (tdx_dir / "pckcrl").read_bytes()


# --- verification with collateral ------------------------------------------------------------


def test_tdx_quote_with_collateral_inside_its_validity(quotes, tdx_collateral, tdx_dir):
    result = dcap.verify_quote(quotes["trustee-tdx-v4"], now=INSIDE, collateral=tdx_collateral)
    assert [c.name for c in result.checks] == ALL_CHECKS
    info = parse_tcb_info((tdx_dir / "sample_tcbInfo_response").read_bytes())
    tcb = result.extra["tcb"]
    assert tcb["tcb_info"].endswith("sample_tcbInfo_response")
    assert tcb["tcb_evaluation_data_number"] == info.tcb_evaluation_data_number
    assert result.tcb_status == "UpToDate"
    assert result.advisory_ids == ()
    assert result.claims["fmspc"] == info.fmspc.hex()


def test_tdx_collateral_is_refused_as_expired_now(quotes, tdx_collateral):
    err = _rejected(quotes["trustee-tdx-v4"], datetime.now(UTC), tdx_collateral)
    assert err.check == "tcb-info-signature"
    assert "'Intel SGX TCB Signing' expired on 2025-05-21" in err.reason


def test_tcb_info_past_its_next_update(quotes, tdx_collateral):
    err = _rejected(quotes["trustee-tdx-v4"], datetime(2023, 7, 20, tzinfo=UTC), tdx_collateral)
    assert err.check == "tcb-info-signature"
    assert "expired: its nextUpdate was 2023-07-18" in err.reason


def test_tcb_info_not_yet_issued(quotes, tdx_collateral):
    err = _rejected(quotes["trustee-tdx-v4"], datetime(2023, 6, 10, tzinfo=UTC), tdx_collateral)
    assert err.check == "tcb-info-signature"
    assert "was issued 2023-06-18" in err.reason and "after the evaluation time" in err.reason


def test_qe_identity_past_its_next_update(quotes, tdx_collateral):
    err = _rejected(quotes["trustee-tdx-v4"], datetime(2023, 7, 10, tzinfo=UTC), tdx_collateral)
    assert err.check == "qe-identity-signature"
    assert "QE identity" in err.reason and "nextUpdate was 2023-07-08" in err.reason


def test_platform_tcb_below_every_level(quotes, tdx_collateral):
    """go-tdx-guest's v4 quote: its PCK TCB (SGX components 3,3,...) is below every level
    of the TCB info published for its FMSPC, which Intel calls TCB_NOT_SUPPORTED."""
    err = _rejected(quotes["tdx-v4"], INSIDE, tdx_collateral)
    assert err.check == "tcb-status"
    assert "Intel does not support this platform TCB" in err.reason


def test_v5_quote_picks_its_fmspc_but_the_chain_has_expired(quotes, tdx_collateral):
    err = _rejected(quotes["tdx-v5"], datetime(2026, 2, 3, tzinfo=UTC), tdx_collateral)
    assert err.check == "tcb-info-signature"
    assert "'Intel SGX TCB Signing' expired" in err.reason
    selected = next(c for c in err.checks if c.name == "tcb-info")
    assert "sample_tcbinfo_response_v5" in selected.detail


def test_sgx_quote_with_the_sgx_folder(quotes, vectors, signing_chain):
    """SOURCES.md expects TCB status OutOfDate here, as trustee's example token reports for
    this quote. But sgx/collateral holds trustee's *TDX* collateral (id "TDX", FMSPC
    00A06D080000, QE identity TD_QE), not the SGX TCB info for this platform (FMSPC
    00606A000000) that trustee's service fetched from Intel when it made that token.
    Intel's rules (QVL 4.1.2.4.9/10: TCB info id and FMSPC must match the quote and PCK
    certificate) refuse the pairing, and so do we, saying why."""
    collateral = load_collateral_dir(vectors / "sgx" / "collateral", issuer_chain=signing_chain)
    err = _rejected(quotes["sgx-v3"], datetime(2025, 11, 1, tzinfo=UTC), collateral)
    assert err.check == "tcb-info"
    assert "no TCB info for this SGX platform (FMSPC 00606a000000)" in err.reason
    assert "TCB info is for TDX platforms but the quote is from SGX" in err.reason


def test_sgx_quote_with_tdx_collateral(quotes, tdx_collateral):
    err = _rejected(quotes["sgx-v3"], INSIDE, tdx_collateral)
    assert err.check == "tcb-info"
    assert "is for TDX platforms" in err.reason


def test_reserialised_tcb_info_is_refused(quotes, tdx_dir, tmp_path):
    """The signature covers the bytes as Intel sent them: the same JSON re-serialised fails."""
    raw = json.loads((tdx_dir / "sample_tcbInfo_response").read_bytes())
    spaced = json.dumps(raw).encode()
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={"sample_tcbInfo_response": spaced})
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "tcb-info-signature"
    assert "signature does not verify with the TCB signing key" in err.reason


def test_edited_tcb_info_is_refused(quotes, tdx_dir, tmp_path):
    raw = (tdx_dir / "sample_tcbInfo_response").read_bytes()
    edited = raw.replace(b'"tcbStatus":"OutOfDate"', b'"tcbStatus":"UpToDate"')
    assert edited != raw
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={"sample_tcbInfo_response": edited})
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "tcb-info-signature"


def test_edited_qe_identity_is_refused(quotes, tdx_dir, tmp_path):
    raw = (tdx_dir / "sample_qeIdentity_response").read_bytes()
    edited = raw.replace(b'"isvsvn":4', b'"isvsvn":3')
    assert edited != raw
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={"sample_qeIdentity_response": edited})
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "qe-identity-signature"
    assert "signature does not verify" in err.reason


def test_qe_identity_for_the_wrong_enclave(quotes, tdx_dir, tmp_path):
    raw = (tdx_dir / "sample_qeIdentity_response").read_bytes()
    folder = collateral_dir(
        tmp_path / "c",
        tdx_dir,
        replace={"sample_qeIdentity_response": raw.replace(b'"TD_QE"', b'"QE"')},
    )
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "qe-identity"
    assert "no QE identity 'TD_QE' for this TDX quote" in err.reason


def test_without_root_crl(quotes, tdx_dir, tmp_path):
    folder = collateral_dir(tmp_path / "c", tdx_dir, omit=("rootcrl.der",))
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "root-crl"
    assert "revocation of the PCK CA and the TCB signing certificate cannot be checked" in (
        err.reason
    )


def test_without_pck_crl(quotes, tdx_dir, tmp_path):
    folder = collateral_dir(tmp_path / "c", tdx_dir, omit=("pckcrl",))
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == "pck-crl"
    assert "no PCK CRL issued by 'Intel SGX PCK Platform CA'" in err.reason


@pytest.mark.parametrize(("name", "check"), [("pckcrl", "pck-crl"), ("rootcrl.der", "root-crl")])
def test_crl_with_a_broken_signature(quotes, tdx_dir, tmp_path, name, check):
    crl = bytearray((tdx_dir / name).read_bytes())
    crl[-3] ^= 0x01  # inside the signature's s value
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={name: bytes(crl)})
    err = _rejected(quotes["trustee-tdx-v4"], INSIDE, load_collateral_dir(folder))
    assert err.check == check
    assert "signature does not verify" in err.reason


def test_crl_time_window(tdx_collateral, quotes):
    crl = tdx_collateral.pck_crls[0]
    chain = dcap.load_pck_chain(dcap.parse_quote(quotes["trustee-tdx-v4"]).certification.data)
    ca_der = chain.ders[1]
    dcap.check_crl(crl, ca_der, "PCK CA", INSIDE, "pck-crl")
    with pytest.raises(EvidenceRejected, match="after the evaluation time"):
        dcap.check_crl(crl, ca_der, "PCK CA", datetime(2023, 6, 1, tzinfo=UTC), "pck-crl")
    with pytest.raises(EvidenceRejected, match="expired: its nextUpdate was 2023-07-08"):
        dcap.check_crl(crl, ca_der, "PCK CA", datetime(2023, 7, 9, tzinfo=UTC), "pck-crl")


def test_revoked_serial_is_refused(tdx_collateral):
    crl = tdx_collateral.pck_crls[0]
    revoked = next(iter(crl.crl))
    with pytest.raises(EvidenceRejected, match="is revoked by") as info:
        dcap.check_not_revoked(crl, revoked.serial_number, "Intel SGX PCK Certificate", "pck-crl")
    assert f"{revoked.serial_number:x}" in info.value.reason
    dcap.check_not_revoked(crl, revoked.serial_number + 1, "another", "pck-crl")


def test_crl_with_an_invalid_version_is_named(tdx_dir, tmp_path):
    """`cryptography` raises InvalidVersion (not a ValueError) here: found by fuzzing."""
    crl = bytearray((tdx_dir / "pckcrl").read_bytes())
    version_at = crl.index(b"\x02\x01\x01") + 2
    crl[version_at] = 0x00
    folder = collateral_dir(tmp_path / "c", tdx_dir, replace={"pckcrl": bytes(crl)})
    with pytest.raises(InputError, match="not recognised as Intel collateral") as info:
        load_collateral_dir(folder)
    assert str(folder / "pckcrl") in str(info.value)
