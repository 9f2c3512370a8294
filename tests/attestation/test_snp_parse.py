"""Parsing SEV-SNP reports: the layout, real reports, and every structural refusal."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from snp_synthetic import edit

from workbench.attestation.formats import snp_offsets as off
from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.snp import decode_tcb, parse_report, product_from_cpuid
from workbench.attestation.verify.amd_extensions import parse_amd_extensions
from workbench.attestation.verify.certs import load_certificate

REPORTS = {
    "go-sev-guest": ("go-sev-guest-attestation.bin", "go-sev-guest-vcek.der"),
    "trustee-vcek": ("trustee-test-report.bin", "trustee-test-vcek.der"),
    "trustee-vlek": ("trustee-vlek-report.bin", "trustee-vlek.der"),
}


def _read(vectors: Path, name: str) -> bytes:
    return (vectors / "sev-snp" / name).read_bytes()


def test_layout_fields_are_in_order_and_do_not_overlap():
    ends = [(offset, offset + size) for _, offset, size in off.FIELDS]
    for (_, end), (start, _) in itertools.pairwise(ends):
        assert end <= start
    assert ends[-1][1] == off.REPORT_SIZE
    assert off.SIGNATURE + 512 == off.REPORT_SIZE


def test_reserved_ranges_never_cover_a_field_of_their_version():
    later = {"cpuid_fam_id": 3, "cpuid_mod_id": 3, "cpuid_step": 3}
    later |= {"launch_mit_vector": 5, "current_mit_vector": 5}
    for version, ranges in off.RESERVED_BY_VERSION.items():
        for name, offset, size in off.FIELDS:
            if later.get(name, 0) > version:
                continue
            for start, end in ranges:
                assert end <= offset or offset + size <= start, (version, name)


@pytest.mark.parametrize("which", sorted(REPORTS))
def test_real_reports_parse_and_agree_with_their_certificate(vectors: Path, which: str):
    report_name, cert_name = REPORTS[which]
    report = parse_report(_read(vectors, report_name))
    cert = load_certificate(_read(vectors, cert_name))
    ext = parse_amd_extensions(cert)
    # The certificate was issued for the report's TCB; the two sources must agree.
    assert report.tcb("reported", ext.product).components() == {
        k: v for k, v in ext.spl.items() if k in report.tcb("reported").components()
    }
    assert report.signature_algo == "ecdsa-p384-sha384"
    assert report.signed_bytes == _read(vectors, report_name)[:0x2A0]
    if ext.hwid is not None:
        assert report.chip_id == ext.hwid
        assert report.signing_key == "vcek"
    else:
        assert report.signing_key == "vlek"


def test_versions_stated_by_sources(vectors: Path):
    assert parse_report(_read(vectors, "go-sev-guest-attestation.bin")).version == 2
    assert parse_report(_read(vectors, "trustee-test-report.bin")).version == 2
    vlek = parse_report(_read(vectors, "trustee-vlek-report.bin"))
    assert vlek.version == 3
    assert vlek.signing_key == "vlek"
    assert vlek.cpuid is not None
    assert vlek.product == "milan"  # family 0x19, model 0x01
    assert vlek.launch_mit_vector is None


def test_version_2_has_no_cpuid_or_product(vectors: Path):
    report = parse_report(_read(vectors, "go-sev-guest-attestation.bin"))
    assert report.cpuid is None
    assert report.product is None


def test_debug_is_policy_bit_19(vectors: Path):
    data = _read(vectors, "trustee-test-report.bin")
    policy = parse_report(data).policy
    assert parse_report(edit(data, policy=policy | 1 << 19)).debug is True
    assert parse_report(edit(data, policy=policy & ~(1 << 19))).debug is False
    assert parse_report(edit(data, policy=policy | 1 << 19)).policy_flags["debug"] is True


def test_signer_info_bits(vectors: Path):
    data = _read(vectors, "trustee-test-report.bin")
    vlek_masked = parse_report(edit(data, signer_info=0b110))
    assert vlek_masked.signing_key == "vlek"
    assert vlek_masked.mask_chip_key is True
    assert vlek_masked.author_key_en is False
    assert parse_report(edit(data, signer_info=0b11101)).signing_key == "none"
    assert parse_report(edit(data, signer_info=0b11101)).author_key_en is True


def test_milan_and_turin_tcb_layouts_differ():
    # Milan/Genoa: BOOT_LOADER, TEE, 4 reserved, SNP, MICROCODE (little-endian bytes).
    milan = decode_tcb(int.from_bytes(bytes([2, 1, 0, 0, 0, 0, 5, 0x44]), "little"), "milan")
    assert milan.to_dict() == {"bootloader": 2, "tee": 1, "snp": 5, "microcode": 0x44}
    assert milan.fmc is None
    # Turin: FMC, BOOT_LOADER, TEE, SNP, 3 reserved, MICROCODE.
    raw = int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 5]), "little")
    turin = decode_tcb(raw, "turin")
    assert turin.to_dict() == {"bootloader": 2, "tee": 3, "snp": 4, "microcode": 5, "fmc": 1}
    assert decode_tcb(raw, "genoa").to_dict() == {
        "bootloader": 1,
        "tee": 2,
        "snp": 0,
        "microcode": 5,
    }


def test_unknown_tcb_product_is_refused():
    with pytest.raises(MalformedEvidence, match="no SEV-SNP TCB_VERSION layout for product"):
        decode_tcb(0, "venice")


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x01, "milan"),
        (0x19, 0x11, "genoa"),
        (0x19, 0xA0, "genoa"),
        (0x1A, 0x02, "turin"),
        (0x1A, 0x50, None),
        (0x17, 0x31, None),
    ],
)
def test_product_from_cpuid(family: int, model: int, product: str | None):
    assert product_from_cpuid(family, model) == product


def test_v3_cpuid_names_turin(vectors: Path):
    data = _read(vectors, "trustee-vlek-report.bin")
    report = parse_report(edit(data, cpuid_fam_id=0x1A, cpuid_mod_id=0x02))
    assert report.product == "turin"
    assert report.tcb("reported").fmc is not None


def test_version_5_decodes_mitigation_vectors(vectors: Path):
    data = edit(_read(vectors, "trustee-vlek-report.bin"), version=5, launch_mit_vector=3)
    report = parse_report(edit(data, current_mit_vector=7))
    assert (report.launch_mit_vector, report.current_mit_vector) == (3, 7)


# -- refusals ---------------------------------------------------------------------------


def test_empty_input_is_malformed():
    with pytest.raises(MalformedEvidence, match="empty"):
        parse_report(b"")


def test_truncated_input_is_malformed(vectors: Path):
    data = _read(vectors, "go-sev-guest-attestation.bin")
    with pytest.raises(MalformedEvidence, match="truncated: 1183 bytes, expected 1184"):
        parse_report(data[:-1])


def test_oversized_input_is_malformed(vectors: Path):
    data = _read(vectors, "go-sev-guest-attestation.bin")
    with pytest.raises(MalformedEvidence, match="1185 bytes, expected exactly 1184"):
        parse_report(data + b"\0")


def test_non_bytes_input_is_malformed():
    with pytest.raises(MalformedEvidence, match="must be bytes, not str"):
        parse_report("report")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 1, 6, 0xFFFFFFFF])
def test_unknown_version_is_malformed(vectors: Path, version: int):
    data = edit(_read(vectors, "go-sev-guest-attestation.bin"), version=version)
    with pytest.raises(MalformedEvidence, match=f"version {version} is not supported"):
        parse_report(data)


@pytest.mark.parametrize("algo", [0, 2, 0x100])
def test_unknown_signature_algorithm_is_malformed(vectors: Path, algo: int):
    data = edit(_read(vectors, "go-sev-guest-attestation.bin"), signature_algo=algo)
    with pytest.raises(MalformedEvidence, match=f"unknown signature algorithm {algo}"):
        parse_report(data)


@pytest.mark.parametrize("version", sorted(off.RESERVED_BY_VERSION))
def test_every_reserved_byte_must_be_zero(vectors: Path, version: int):
    data = edit(_read(vectors, "trustee-vlek-report.bin"), version=version)
    if version < off.FIRST_VERSION_WITH_CPUID:
        data = edit(data, cpuid_fam_id=0, cpuid_mod_id=0, cpuid_step=0)
    parse_report(data)
    for start, end in off.RESERVED_BY_VERSION[version]:
        for index in range(start, end):
            bad = bytearray(data)
            bad[index] = 0x01
            with pytest.raises(MalformedEvidence, match=r"reserved bytes .* must be zero"):
                parse_report(bytes(bad))


def test_unused_signature_bytes_must_be_zero(vectors: Path):
    data = _read(vectors, "go-sev-guest-attestation.bin")
    for index in range(off.ECDSA_SIGNATURE_END, off.REPORT_SIZE):
        bad = bytearray(data)
        bad[index] = 0x80
        with pytest.raises(MalformedEvidence, match="unused signature bytes"):
            parse_report(bytes(bad))


def test_cpuid_bytes_are_reserved_in_version_2(vectors: Path):
    data = edit(_read(vectors, "go-sev-guest-attestation.bin"), cpuid_fam_id=0x19)
    with pytest.raises(MalformedEvidence, match=r"0x188\.\.0x1a0 must be zero"):
        parse_report(data)


def test_policy_bit_17_must_be_one(vectors: Path):
    data = _read(vectors, "go-sev-guest-attestation.bin")
    policy = parse_report(data).policy
    with pytest.raises(MalformedEvidence, match="bit 17 clear"):
        parse_report(edit(data, policy=policy & ~(1 << 17)))


@pytest.mark.parametrize("bit", [26, 40, 63])
def test_policy_reserved_bits_must_be_zero(vectors: Path, bit: int):
    data = _read(vectors, "go-sev-guest-attestation.bin")
    policy = parse_report(data).policy
    with pytest.raises(MalformedEvidence, match="sets reserved bits 63:26"):
        parse_report(edit(data, policy=policy | 1 << bit))


@pytest.mark.parametrize("value", [2, 3, 4, 5, 6])
def test_reserved_signing_key_values_are_malformed(vectors: Path, value: int):
    data = edit(_read(vectors, "go-sev-guest-attestation.bin"), signer_info=value << 2)
    with pytest.raises(MalformedEvidence, match=f"reserved SIGNING_KEY value {value}"):
        parse_report(data)


def test_signer_info_reserved_bits_are_malformed(vectors: Path):
    data = edit(_read(vectors, "go-sev-guest-attestation.bin"), signer_info=1 << 5)
    with pytest.raises(MalformedEvidence, match="SIGNER_INFO 0x00000020 sets reserved bits"):
        parse_report(data)
