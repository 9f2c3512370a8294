"""CRLs: a PCK CA listed by the root CRL is refused; a CRL the pinned root did not sign is
refused. The revoking CRL is signed by a TEST CA (see test_ca.py): Intel's root key is not
ours, so the revocation itself is shown with the verifier's CRL checks and the test CA as
issuer, and the test CRL served as Intel's root CRL shows the signature refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from collateral_server import CollateralServer, pcs_routes
from collateral_service import INSIDE, make_service
from cryptography.hazmat.primitives.serialization import Encoding
from test_ca import crl, ec_key, make_root

from workbench.attestation.formats.dcap import parse_quote
from workbench.attestation.verify import dcap
from workbench.attestation.verify.collateral import load_collateral_dir, load_crl
from workbench.attestation.verify.intel_chain import load_pck_chain
from workbench.attestation.verify.result import EvidenceRejected

ROOT_CRL_PATH = "/sgx/certification/v4/rootcacrl"


def _pck_ca(quote: bytes):
    return load_pck_chain(parse_quote(quote).certification.data).certs[1]


def test_root_crl_listing_the_pck_ca_refuses_it(tdx_quote):
    key = ec_key()
    root = make_root("TEST root standing in for Intel SGX Root CA", key)
    pck_ca = _pck_ca(tdx_quote)
    revoking = load_crl("test root CRL", crl(root.subject.rfc4514_string().split("=", 1)[1],
                                             key, [pck_ca.serial_number],
                                             last=INSIDE - timedelta(days=1),
                                             next_update=INSIDE + timedelta(days=30)))
    assert revoking is not None
    root_der = root.public_bytes(Encoding.DER)
    dcap.check_crl(revoking, root_der, "TEST root", INSIDE, dcap.CHECK_ROOT_CRL)  # signed
    with pytest.raises(EvidenceRejected) as info:
        dcap.check_not_revoked(revoking, pck_ca.serial_number, "Intel SGX PCK Platform CA",
                               dcap.CHECK_ROOT_CRL)
    assert info.value.reason == (
        f"'Intel SGX PCK Platform CA' (serial {pck_ca.serial_number:x}) is revoked by test "
        f"root CRL since {(INSIDE - timedelta(days=1)).isoformat()}")


def test_root_crl_not_signed_by_the_pinned_root_is_refused(vectors, tdx_quote, tmp_path):
    key = ec_key()
    forged = crl("Intel SGX Root CA", key, [_pck_ca(tdx_quote).serial_number],
                 last=datetime(2023, 6, 1, tzinfo=UTC), next_update=datetime(2024, 1, 1,
                                                                             tzinfo=UTC))
    routes = pcs_routes()
    routes[ROOT_CRL_PATH] = (forged, routes[ROOT_CRL_PATH][1])
    server = CollateralServer(routes)
    try:
        with pytest.raises(EvidenceRejected) as info:
            dcap.verify_quote(tdx_quote, now=INSIDE,
                              collateral=make_service(tmp_path, server).dcap)
    finally:
        server.stop()
    assert info.value.check == "root-crl"
    assert info.value.reason == (f"{server.url}{ROOT_CRL_PATH}: signature does not verify "
                                 "with 'Intel SGX Root CA'")


def test_root_crl_covers_the_qe_identitys_signer_as_well_as_the_tcb_infos(vectors, tdx_quote):
    # Each of the two comes with its own issuer chain: before, only the TCB info's signer was
    # looked up in the root CRL, so a QE identity signed by a revoked TCB signing
    # certificate passed.
    folder = load_collateral_dir(vectors / "tdx" / "collateral")
    result = dcap.verify_quote(tdx_quote, now=INSIDE, collateral=folder)
    root = next(c for c in result.checks if c.name == dcap.CHECK_ROOT_CRL)
    # Intel's PCS signs both with one certificate: it is looked up once.
    assert root.detail.endswith(": PCK CA and TCB signing certificate not revoked")

    state = dcap._State(quote=parse_quote(tdx_quote), now=INSIDE)
    state.chain = load_pck_chain(state.quote.certification.data)
    tcb_signer = folder.signing_chains[0][1].certs[0]
    other_signer = make_root("TEST TCB signing certificate of another chain", ec_key())
    state.signing_certs = [tcb_signer, other_signer, tcb_signer]
    assert dcap.revocable_by_root(state) == [state.chain.certs[1], tcb_signer, other_signer]
