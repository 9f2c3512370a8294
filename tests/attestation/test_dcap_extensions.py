"""The SGX extension of PCK certificates, decoded with pyasn1."""

from __future__ import annotations

import pytest
from dcap_build import QUOTES
from pyasn1.codec.der import encoder
from pyasn1.type import univ

from workbench.attestation.formats.dcap import parse_quote
from workbench.attestation.formats.intel_collateral import parse_tcb_info
from workbench.attestation.verify import intel_extensions as ie
from workbench.attestation.verify import pinned
from workbench.attestation.verify.intel_chain import load_pck_chain
from workbench.attestation.verify.result import EvidenceRejected


def _leaf(vectors, name):
    quote = parse_quote((vectors / QUOTES[name]).read_bytes())
    return load_pck_chain(quote.certification.data).certs[0]


def _pair(oid: str, value) -> univ.Sequence:
    seq = univ.Sequence()
    seq.setComponentByPosition(0, univ.ObjectIdentifier(oid))
    seq.setComponentByPosition(1, value)
    return seq


def _seq(*items) -> univ.SequenceOf:
    out = univ.SequenceOf(componentType=univ.Sequence())
    for i, item in enumerate(items):
        out.setComponentByPosition(i, item)
    return out


def _extension(drop: str = "", extra: tuple = (), **override) -> bytes:
    """A well-formed SGX extension (our own values), minus ``drop`` or with ``override``."""
    tcb = [_pair(oid, univ.Integer(2)) for oid in ie.TCB_COMPONENTS]
    tcb.append(_pair(ie.TCB_PCESVN, univ.Integer(11)))
    tcb.append(_pair(ie.TCB_CPUSVN, univ.OctetString(bytes([2] * 16))))
    members = {
        ie.PPID: univ.OctetString(b"\x01" * 16),
        ie.TCB: _seq(*tcb),
        ie.PCE_ID: univ.OctetString(b"\x00\x00"),
        ie.FMSPC: univ.OctetString(bytes.fromhex("00906ed50000")),
        ie.SGX_TYPE: univ.Enumerated(0),
    }
    members.update(override)
    members.pop(drop, None)
    return encoder.encode(_seq(*[_pair(k, v) for k, v in members.items()], *extra))


@pytest.mark.parametrize("name", sorted(QUOTES))
def test_real_pck_extensions(vectors, name):
    ext = ie.pck_extensions(_leaf(vectors, name))
    # Intel writes the TCB twice: as 16 component SVNs and as the CPUSVN octets.
    assert bytes(ext.sgx_svns) == ext.cpu_svn
    assert len(ext.fmspc) == 6 and len(ext.pce_id) == 2 and len(ext.ppid) == 16
    assert ext.sgx_type_name in ("Standard", "Scalable", "ScalableWithIntegrity")


def test_fmspc_matches_the_tcb_info_published_for_it(vectors):
    """Two independent sources: the PCK certificate and Intel's TCB info for that platform."""
    ext = ie.pck_extensions(_leaf(vectors, "trustee-tdx-v4"))
    info = parse_tcb_info((vectors / "tdx/collateral/sample_tcbInfo_response").read_bytes())
    assert ext.fmspc == info.fmspc and ext.pce_id == info.pce_id
    v5 = ie.pck_extensions(_leaf(vectors, "tdx-v5"))
    info5 = parse_tcb_info((vectors / "tdx/collateral/sample_tcbinfo_response_v5").read_bytes())
    assert v5.fmspc == info5.fmspc


def test_synthetic_extension_decodes():
    ext = ie._parse(_extension())
    assert ext.sgx_svns == (2,) * 16 and ext.pce_svn == 11
    assert ext.fmspc == bytes.fromhex("00906ed50000")
    assert ext.dynamic_platform is None


def test_certificate_without_the_extension():
    with pytest.raises(EvidenceRejected, match="not present: this is not a PCK certificate"):
        ie.pck_extensions(pinned.intel_sgx_root())


@pytest.mark.parametrize(
    ("der", "reason"),
    [
        (b"\x04\x02ab", "not a sequence of"),
        (_extension(drop=ie.FMSPC), f"missing {ie.FMSPC}"),
        (_extension(**{ie.FMSPC: univ.Integer(5)}), f"{ie.FMSPC} is not OctetString"),
        (_extension(**{ie.FMSPC: univ.OctetString(b"\x00" * 5)}), "is 5 bytes, expected 6"),
        (_extension(**{ie.SGX_TYPE: univ.Enumerated(-1)}), "is negative"),
        (_extension(extra=(_pair(ie.PPID, univ.OctetString(b"\x00" * 16)),)), "appears twice"),
        (_extension() + b"\x00", "has trailing bytes"),
    ],
)
def test_malformed_extension(der, reason):
    with pytest.raises(EvidenceRejected, match=reason) as err:
        ie._parse(der)
    assert err.value.check == "pck-extensions"


def test_component_svn_out_of_range():
    tcb = [_pair(oid, univ.Integer(300)) for oid in ie.TCB_COMPONENTS]
    tcb += [
        _pair(ie.TCB_PCESVN, univ.Integer(1)),
        _pair(ie.TCB_CPUSVN, univ.OctetString(b"\x00" * 16)),
    ]
    with pytest.raises(EvidenceRejected, match="out of range"):
        ie._parse(_extension(**{ie.TCB: _seq(*tcb)}))


def test_unknown_members_are_ignored():
    extra = (_pair(ie.SGX_EXTENSION_OID + ".99", univ.Integer(1)),)
    assert ie._parse(_extension(extra=extra)).pce_svn == 11
