"""Single SEV-SNP verification steps on inputs no real vector provides.

Turin reports, a signer that disagrees with its certificate, a TCB or chip id that differs
from the certificate: AMD's keys never sign such combinations for us, so each step is fed a
look-alike certificate (snp_synthetic) and a report re-signed with its key. The pinned chain
still refuses these certificates, which is tested too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from snp_synthetic import der_integer, der_octets, edit, endorsement_cert, resign, tcb_raw

from workbench.attestation.formats.snp import parse_report
from workbench.attestation.verify import pinned
from workbench.attestation.verify.amd_extensions import ExtensionError, parse_amd_extensions
from workbench.attestation.verify.certs import load_certificate
from workbench.attestation.verify.result import EvidenceRejected
from workbench.attestation.verify.snp import (
    _cert_chain,
    _check_link,
    _chip_id,
    _endorsement_key,
    _product,
    _report_signature,
    _signer_matches,
    _tcb_matches,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
MILAN_TCB = {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
TURIN_TCB = {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 5}
TURIN_HWID = bytes(range(1, 9))


@pytest.fixture(scope="module")
def base_v3(vectors: Path) -> bytes:
    return (vectors / "sev-snp/trustee-vlek-report.bin").read_bytes()


def _key(cert_der: bytes):
    _, key = _endorsement_key([cert_der])
    return key


def _turin_vcek(spl: dict[str, int] | None = None, hwid: bytes = TURIN_HWID):
    return endorsement_cert(
        kind="vcek",
        product="turin",
        product_name="Turin-B0",
        spl=TURIN_TCB if spl is None else spl,
        hwid=hwid,
    )


def _turin_report(base: bytes, private_key: ec.EllipticCurvePrivateKey, **fields) -> bytes:
    values = {
        "cpuid_fam_id": 0x1A,
        "cpuid_mod_id": 0x02,
        "cpuid_step": 0,
        "signer_info": 0,
        "reported_tcb": tcb_raw("turin", **TURIN_TCB),
        "chip_id": TURIN_HWID + bytes(56),
    }
    values.update(fields)
    return resign(edit(base, **values), private_key)


# -- a Turin VCEK passes every step but the pinned chain ----------------------------------


def test_turin_report_passes_each_step_with_its_vcek(base_v3: bytes):
    cert, private_key = _turin_vcek()
    key = _key(cert)
    report = parse_report(_turin_report(base_v3, private_key))
    detail, product = _product(key, report)
    assert product == "turin"
    assert "CPUID family 0x1a model 0x02" in detail
    _report_signature(key, report)
    _signer_matches(key, report)
    _, reported = _tcb_matches(key, report, product)
    assert reported.to_dict() == TURIN_TCB
    detail, _ = _chip_id(key, report)
    assert "(8 bytes)" in detail


def test_look_alike_turin_vcek_is_refused_by_the_pinned_chain(base_v3: bytes):
    cert, _ = _turin_vcek()
    with pytest.raises(EvidenceRejected, match="not signed with RSASSA-PSS SHA-384") as caught:
        _cert_chain(_key(cert), "turin", NOW)
    assert caught.value.check == "cert-chain"


@pytest.mark.parametrize("product", ["milan", "genoa", "turin"])
@pytest.mark.parametrize("kind", ["vcek", "vlek"])
def test_every_pinned_intermediate_is_signed_by_its_ark(product: str, kind: str):
    signing, ark = pinned.amd_signing_key(product, kind), pinned.amd_ark(product)
    for _ in range(2):  # the second pass is answered from the pinned-link cache
        _check_link(signing, ark, "cert-chain", known=True)
        _check_link(ark, ark, "cert-chain", known=True)
    wrong_ark = pinned.amd_ark("genoa" if product != "genoa" else "milan")
    with pytest.raises(EvidenceRejected, match="is not signed by 'ARK-"):
        _check_link(signing, wrong_ark, "cert-chain", known=True)


# -- signer-matches, tcb-matches, chip-id -----------------------------------------------------


def test_report_claiming_a_vlek_but_signed_by_a_vcek_is_refused(base_v3: bytes):
    cert, private_key = _turin_vcek()
    key = _key(cert)
    report = parse_report(_turin_report(base_v3, private_key, signer_info=1 << 2))
    _report_signature(key, report)
    with pytest.raises(EvidenceRejected) as caught:
        _signer_matches(key, report)
    assert caught.value.check == "signer-matches"
    assert "SIGNER_INFO says it was signed by the VLEK but the certificate given is a VCEK" in (
        caught.value.reason
    )


def test_tcb_differing_from_the_certificate_is_refused(base_v3: bytes):
    cert, private_key = _turin_vcek(spl={**TURIN_TCB, "snp": 9, "fmc": 2})
    key = _key(cert)
    report = parse_report(_turin_report(base_v3, private_key))
    with pytest.raises(EvidenceRejected) as caught:
        _tcb_matches(key, report, "turin")
    assert caught.value.check == "tcb-matches"
    assert caught.value.reason == (
        "the VCEK was issued for TCB snp=9 fmc=2 but the report's reported_tcb has snp=4 fmc=1"
    )


def test_turin_certificate_without_fmc_spl_is_refused(base_v3: bytes):
    spl = {k: v for k, v in TURIN_TCB.items() if k != "fmc"}
    cert, private_key = _turin_vcek(spl=spl)
    report = parse_report(_turin_report(base_v3, private_key))
    with pytest.raises(EvidenceRejected, match=r"lacks the TCB extension\(s\) for fmc \(turin\)"):
        _tcb_matches(_key(cert), report, "turin")


def test_milan_reserved_spl_bytes_are_compared_too(base_v3: bytes):
    cert, private_key = endorsement_cert(spl={**MILAN_TCB, "spl4": 1}, hwid=bytes(range(64)))
    report = parse_report(
        resign(edit(base_v3, reported_tcb=tcb_raw("milan", **MILAN_TCB)), private_key)
    )
    with pytest.raises(EvidenceRejected, match=r"issued for TCB spl4=1 .* has spl4=0"):
        _tcb_matches(_key(cert), report, "milan")


def test_chip_id_differing_from_the_hwid_is_refused(base_v3: bytes):
    cert, private_key = _turin_vcek(hwid=bytes(8))
    report = parse_report(_turin_report(base_v3, private_key))
    with pytest.raises(EvidenceRejected) as caught:
        _chip_id(_key(cert), report)
    assert caught.value.check == "chip-id"
    assert "is not the VCEK's hwID 0000000000000000" in caught.value.reason


def test_turin_chip_id_must_be_zero_after_the_hwid(base_v3: bytes):
    cert, private_key = _turin_vcek()
    report = parse_report(_turin_report(base_v3, private_key, chip_id=TURIN_HWID + b"\1" * 56))
    with pytest.raises(EvidenceRejected, match="CHIP_ID"):
        _chip_id(_key(cert), report)


def test_masked_chip_id_is_not_compared(base_v3: bytes):
    cert, private_key = _turin_vcek()
    report = parse_report(_turin_report(base_v3, private_key, signer_info=0b10, chip_id=bytes(64)))
    detail, _ = _chip_id(_key(cert), report)
    assert "masked CHIP_ID" in detail


def test_chip_id_is_not_applicable_to_a_vlek(vectors: Path):
    report = parse_report((vectors / "sev-snp/trustee-vlek-report.bin").read_bytes())
    key = _key((vectors / "sev-snp/trustee-vlek.der").read_bytes())
    detail, _ = _chip_id(key, report)
    assert detail.startswith("not applicable")


# -- endorsement-key and product refusals ---------------------------------------------------


def _refused(step, *args) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as caught:
        step(*args)
    return caught.value


def test_endorsement_key_must_be_p384():
    cert, _ = endorsement_cert(
        spl=MILAN_TCB, hwid=bytes(64), key=ec.generate_private_key(ec.SECP256R1())
    )
    err = _refused(_endorsement_key, [cert])
    assert (err.check, err.reason) == (
        "endorsement-key",
        "the VCEK's public key is not an ECDSA P-384 key",
    )


def test_vcek_without_hwid_is_refused():
    cert, _ = endorsement_cert(spl=MILAN_TCB)
    assert _refused(_endorsement_key, [cert]).reason == "the VCEK lacks its hwid extension"


def test_vcek_with_a_csp_id_is_refused():
    cert, _ = endorsement_cert(spl=MILAN_TCB, hwid=bytes(64), csp_id="CN=cloud")
    reason = _refused(_endorsement_key, [cert]).reason
    assert reason.startswith("the VCEK carries a csp_id extension")


def test_vlek_without_csp_id_is_refused():
    cert, _ = endorsement_cert(kind="vlek", spl=MILAN_TCB)
    assert _refused(_endorsement_key, [cert]).reason == "the VLEK lacks its csp_id extension"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\x04\x01\x00", "AMD extension bootloader is not a valid DER value"),
        (der_integer(3) + b"\0", "AMD extension bootloader has 1 trailing bytes"),
        (der_integer(256), "AMD extension bootloader is 256, outside 0..255"),
        (der_integer(-1), "AMD extension bootloader is -1, outside 0..255"),
    ],
)
def test_malformed_spl_extension_is_refused(value: bytes, message: str):
    cert, _ = endorsement_cert(
        spl=MILAN_TCB, hwid=bytes(64), raw_extensions={"1.3.6.1.4.1.3704.1.3.1": value}
    )
    err = _refused(_endorsement_key, [cert])
    assert err.check == "endorsement-key"
    assert err.reason.startswith("the VCEK's AMD extensions are malformed: ")
    assert message in err.reason


def test_hwid_of_a_wrong_size_is_refused():
    cert, _ = endorsement_cert(spl=MILAN_TCB, hwid=der_octets(bytes(32)))
    with pytest.raises(ExtensionError, match="hwID is 32 bytes, expected 64 or 8"):
        parse_amd_extensions(load_certificate(cert))


def test_hwid_bare_and_tagged_decode_alike(vectors: Path):
    tagged = load_certificate((vectors / "negative/trustee-vcek-invalid-new.der").read_bytes())
    bare = load_certificate((vectors / "negative/trustee-vcek-invalid-legacy.der").read_bytes())
    assert parse_amd_extensions(tagged).hwid == parse_amd_extensions(bare).hwid == bytes(range(64))


def test_certificate_without_product_name_is_refused(base_v3: bytes):
    cert, _ = endorsement_cert(
        spl=MILAN_TCB, hwid=bytes(64), raw_extensions={"1.3.6.1.4.1.3704.1.2": b"\x16\x00"}
    )
    err = _refused(_product, _key(cert), parse_report(base_v3))
    assert (err.check, err.reason) == ("product", "the VCEK has no productName extension")


def test_unsupported_product_name_is_refused(base_v3: bytes):
    cert, _ = endorsement_cert(spl=MILAN_TCB, hwid=bytes(64), product_name="Venice-A0")
    err = _refused(_product, _key(cert), parse_report(base_v3))
    assert err.reason == (
        "the VCEK names product 'Venice-A0', which is not supported (milan, genoa, turin)"
    )


def test_product_name_and_issuer_must_agree(base_v3: bytes):
    cert, _ = endorsement_cert(spl=MILAN_TCB, hwid=bytes(64), product_name="Genoa-B1")
    err = _refused(_product, _key(cert), parse_report(base_v3))
    assert err.check == "product"
    assert "names product 'Genoa-B1' but is issued by 'CN=SEV-Milan" in err.reason
    assert "not by 'SEV-Genoa'" in err.reason


def test_certificate_with_unreadable_extensions_is_refused():
    # A basicConstraints extension whose value is not DER: cryptography cannot read the
    # extension list at all, so the AMD extensions cannot be trusted either.
    cert, _ = endorsement_cert(
        spl=MILAN_TCB, hwid=bytes(64), raw_extensions={"2.5.29.19": b"\x01\x02"}
    )
    err = _refused(_endorsement_key, [cert])
    assert err.check == "endorsement-key"
    assert "the certificate's extensions cannot be read" in err.reason
