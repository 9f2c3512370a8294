"""SEV-SNP collateral from a KDS stand-in: the VCEK fetched by chip id and reported TCB when
the evidence lacks it, the ASK/ARK chain, and AMD's CRL, which is now checked.

No AMD CRL is recorded in the vectors and AMD's ARK key is not ours: the CRLs here are
signed by a TEST CA (test_ca.py). Served as AMD's, the pinned ARK must refuse them; handed
to the CRL check with the test CA as the ARK, they show the revocation and window checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from collateral_server import SNP, CollateralServer, kds_routes
from collateral_service import make_service
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_ca import crl, make_root, name, rsa_key

from workbench.attestation.collateral.errors import CollateralRefused
from workbench.attestation.formats.snp import parse_report
from workbench.attestation.verify import pinned, verify_evidence
from workbench.attestation.verify.amd_crl import check_amd_crl, load_amd_crl
from workbench.attestation.verify.certs import load_certificate
from workbench.attestation.verify.result import EvidenceRejected

# trustee's VCEK encodes its serial as a negative number, which cryptography warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number")
NOW = datetime(2025, 1, 1, tzinfo=UTC)  # inside the go-sev-guest VCEK's validity
CRL_PATH = "/vcek/v1/Milan/crl"


class _Kds:
    def __init__(self, service) -> None:
        self.snp = service.snp
        self.dcap = None


def _report() -> bytes:
    return (SNP / "go-sev-guest-attestation.bin").read_bytes()


def _verify(server, tmp_path, certs=()):
    return verify_evidence(_report(), tee="snp", now=NOW, certs=certs,
                           collateral=_Kds(make_service(tmp_path, server, now=NOW)))


def test_vcek_is_fetched_by_chip_id_and_the_forged_crl_refused(vectors, tmp_path):
    key = rsa_key()
    forged = crl(pinned.amd_ark("milan").subject, key, [], last=NOW - timedelta(days=1),
                 next_update=NOW + timedelta(days=30), pss=True)
    server = CollateralServer(kds_routes(forged))
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify(server, tmp_path)
    finally:
        server.stop()
    err = info.value
    assert err.check == "crl"
    assert err.reason == (f"{server.url}{CRL_PATH}: CRL signature does not verify with the "
                          "pinned 'ARK-Milan'")
    # The fetched VCEK was the report's: the key, chain and signature checks passed first.
    assert [c.name for c in err.checks if c.ok] == [
        "collateral", "endorsement-key", "product", "cert-chain"]
    assert all(count == 1 for count in server.counts.values()) and len(server.counts) == 3


def test_missing_crl_is_refused_naming_the_url(vectors, tmp_path):
    server = CollateralServer(kds_routes(None))
    vcek = (SNP / "go-sev-guest-vcek.der").read_bytes()
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify(server, tmp_path, certs=[vcek])  # the VCEK came with the evidence
    finally:
        server.stop()
    assert info.value.check == "collateral"
    assert f"cannot fetch CRL {CRL_PATH}: {server.url}{CRL_PATH}: HTTP 404" in info.value.reason
    assert not any("/vcek/v1/Milan/3" in path for path in server.counts)  # no VCEK asked


def test_vcek_unknown_to_kds_is_refused(vectors, tmp_path):
    server = CollateralServer({})
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify(server, tmp_path)
    finally:
        server.stop()
    assert info.value.check == "collateral"
    assert "cannot fetch certificate /vcek/v1/Milan/" in info.value.reason
    assert "cannot fetch certificate /vcek/v1/Genoa/" in info.value.reason


# --- the CRL check itself, with a TEST ARK --------------------------------------------------

@pytest.fixture(scope="module")
def test_ark():
    key = rsa_key()
    return key, make_root("ARK-Milan TEST", key)


@pytest.fixture(scope="module")
def vcek():
    # trustee's VCEK: go-sev-guest's has serial number 0, which no CRL entry can name
    return load_certificate((SNP / "trustee-test-vcek.der").read_bytes())


def _crl(test_ark, serials, last=NOW - timedelta(days=1), next_update=NOW + timedelta(days=9)):
    key, _ = test_ark
    return load_amd_crl(crl("ARK-Milan TEST", key, serials, last=last,
                            next_update=next_update, pss=True), "test CRL")


def test_crl_check_passes_when_nothing_is_listed(test_ark, vcek):
    detail = check_amd_crl(_crl(test_ark, [12345]), "test CRL", test_ark[1], (vcek,), NOW)
    assert detail == "test CRL: 'SEV-VCEK' not revoked"


def test_crl_listing_the_vcek_refuses_it(test_ark, vcek):
    listed = _crl(test_ark, [vcek.serial_number + 7, vcek.serial_number])
    with pytest.raises(EvidenceRejected) as info:
        check_amd_crl(listed, "test CRL", test_ark[1], (vcek,), NOW)
    assert info.value.reason.startswith(
        f"'SEV-VCEK' (serial {vcek.serial_number:x}) is revoked by test CRL since ")


def test_expired_crl_is_refused(test_ark, vcek):
    old = _crl(test_ark, [], last=NOW - timedelta(days=60), next_update=NOW - timedelta(days=1))
    with pytest.raises(EvidenceRejected) as info:
        check_amd_crl(old, "test CRL", test_ark[1], (vcek,), NOW)
    assert "test CRL: CRL expired: its nextUpdate was" in info.value.reason


# --- what the supplied certificate asks for ---------------------------------------------------

def _self_made_vcek(product: bytes) -> bytes:
    """A 'SEV-VCEK' nobody issued, naming ``product`` in AMD's productName extension."""
    key = ec.generate_private_key(ec.SECP384R1())
    product_name = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.3704.1.2"),
                                              bytes([0x16, len(product)]) + product)
    cert = (x509.CertificateBuilder().subject_name(name("SEV-VCEK")).issuer_name(name("SEV-VCEK"))
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2040, 1, 1))
            .add_extension(product_name, critical=False).sign(key, hashes.SHA384()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_supplied_vcek_naming_an_unknown_product_is_refused_before_any_fetch(vectors,
                                                                                tmp_path):
    # A version 2 report does not name its product: the unchecked certificate's does. It used
    # to reach the KDS path table and escape as a KeyError (a 500 at the broker).
    server = CollateralServer(kds_routes(None))
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify(server, tmp_path, certs=[_self_made_vcek(b"Venice")])
    finally:
        server.stop()
    assert info.value.check == "collateral"
    assert info.value.reason == (
        "the supplied VCEK names product 'venice', which is not supported (milan, genoa, "
        "turin): no collateral is fetched for it")
    assert server.counts == {}


def test_the_collateral_service_refuses_a_product_kds_does_not_serve(vectors, tmp_path):
    service = make_service(tmp_path, urls=("http://127.0.0.1:9",), now=NOW)
    report = parse_report(_report())
    with pytest.raises(CollateralRefused) as info:
        service.snp(report, "venice", "vcek", True, NOW)
    assert info.value.reason == "AMD KDS serves no product line 'venice'"


# --- Azure's SEV-SNP report gets AMD's CRL too -------------------------------------------------

AZURE_NOW = datetime(2025, 6, 1, tzinfo=UTC)  # inside the Azure vectors' VCEK validity


def _azure_evidence(vectors) -> bytes:
    return (vectors / "azure" / "trustee-snp" / "evidence-v1.json").read_bytes()


def _verify_azure(vectors, server, tmp_path):
    return verify_evidence(_azure_evidence(vectors), tee="az-snp-vtpm", now=AZURE_NOW,
                           collateral=_Kds(make_service(tmp_path, server, now=AZURE_NOW)))


def test_azure_snp_evidence_has_its_vcek_checked_against_amds_crl(vectors, tmp_path):
    # Before, Azure evidence skipped the CRL even with a KDS configured: a revoked VCEK
    # passed. The CRL served here is not AMD's, so the pinned ARK must refuse it.
    forged = crl(pinned.amd_ark("milan").subject, rsa_key(), [],
                 last=AZURE_NOW - timedelta(days=1), next_update=AZURE_NOW + timedelta(days=30),
                 pss=True)
    server = CollateralServer({CRL_PATH: (forged, {"Content-Type": "application/pkix-crl"})})
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify_azure(vectors, server, tmp_path)
    finally:
        server.stop()
    assert info.value.check == "crl"
    assert info.value.reason == (f"{server.url}{CRL_PATH}: CRL signature does not verify "
                                 "with the pinned 'ARK-Milan'")
    assert list(server.counts) == [CRL_PATH]  # the VCEK came with the evidence


def test_azure_snp_evidence_without_amds_crl_is_refused_naming_the_url(vectors, tmp_path):
    server = CollateralServer({})
    try:
        with pytest.raises(EvidenceRejected) as info:
            _verify_azure(vectors, server, tmp_path)
    finally:
        server.stop()
    assert info.value.check == "collateral"
    assert f"cannot fetch CRL {CRL_PATH}: {server.url}{CRL_PATH}: HTTP 404" in info.value.reason


def test_azure_snp_evidence_without_a_collateral_service_is_verified_as_before(vectors):
    result = verify_evidence(_azure_evidence(vectors), tee="az-snp-vtpm", now=AZURE_NOW)
    assert "crl" not in [c.name for c in result.checks]
    assert result.tee == "az-snp-vtpm"
