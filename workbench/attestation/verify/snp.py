"""Verify an AMD SEV-SNP attestation report against its VCEK or VLEK and AMD's pinned roots.

The report does not carry its signing certificate, so the caller supplies the VCEK (chip
key) or VLEK (cloud provider's key) with ``certs``; the ASK/ASVK and the ARK always come
from the pinned roots shipped in the package. Checks run in the order of ``CHECKS`` and the
first failure raises :class:`EvidenceRejected` carrying every check run so far.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import SignatureAlgorithmOID

from workbench.attestation.formats import snp_offsets
from workbench.attestation.formats.snp import SnpReport, TcbVersion, parse_report
from workbench.attestation.verify import pinned
from workbench.attestation.verify.amd_crl import check_amd_crl, load_amd_crl
from workbench.attestation.verify.amd_extensions import (
    AmdKeyExtensions,
    ExtensionError,
    parse_amd_extensions,
)
from workbench.attestation.verify.certs import (
    check_issued_by,
    check_validity,
    common_name,
    load_certificate,
    load_pem_bundle,
    summarise,
)
from workbench.attestation.verify.result import (
    CHECK_COLLATERAL,
    Check,
    EvidenceRejected,
    VerifiedEvidence,
)

CHECKS = (
    "endorsement-key",
    "product",
    "cert-chain",
    "report-signature",
    "signer-matches",
    "tcb-matches",
    "chip-id",
)

# What each kind of endorsement key looks like: its subject CN, the AMD extension that
# identifies its holder (which the other kind must not have), and what AMD calls the
# intermediate that signs it.
ENDORSEMENT_KEYS: dict[str, dict[str, str]] = {
    "vcek": {"subject_cn": "SEV-VCEK", "holder": "hwid", "not": "csp_id", "signer": "ASK"},
    "vlek": {"subject_cn": "SEV-VLEK", "holder": "csp_id", "not": "hwid", "signer": "ASVK"},
}
_KIND_BY_CN = {spec["subject_cn"]: kind for kind, spec in ENDORSEMENT_KEYS.items()}
PRODUCTS = tuple(snp_offsets.TCB_LAYOUTS)
UNVERIFIABLE = (
    "the SEV-SNP report is unverifiable without the VCEK or VLEK that signed it: "
    "give that certificate (DER or PEM) with --certs"
)

# ASK->ARK and ARK->ARK are the same pinned certificates on every call, and whether one
# signed the other is a pure function of the two exact DER encodings. So a successful
# RSASSA-PSS verification is remembered per (certificate DER, issuer DER) pair; failures
# are never remembered, and validity at `now` is not part of this: it is checked on every
# call. Only pinned pairs enter the set, so it is bounded by the pinned table.
_VERIFIED_PINNED_LINKS: set[tuple[bytes, bytes]] = set()
# The VCEK/VLEK -> ASK/ASVK link is just as pure, and a broker sees the same few endorsement
# keys (one per chip) on every request. It is remembered in a bounded LRU: failures never
# enter, and someone sending many certificates only evicts entries. Validity at `now` is
# still checked on every call.
_VERIFIED_ENDORSEMENT_LINKS: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
MAX_REMEMBERED_ENDORSEMENT_LINKS = 256
# A report whose signature verified with a key verifies with it again: also pure. It matters
# on Azure confidential VMs, whose SEV-SNP report is written once per boot and arrives
# unchanged with every request (freshness rides in the TPM quote); a fresh configfs-tsm
# report simply misses. Bounded LRU of (whole report, key point), successes only.
_VERIFIED_REPORT_SIGNATURES: OrderedDict[tuple[bytes, bytes], None] = OrderedDict()
MAX_REMEMBERED_REPORT_SIGNATURES = 1024


# A summary is a pure function of the certificate (equal certificates have equal DER), and
# formatting names is not free; the same VCEK and pinned ASK/ARK recur on every request.
_summary = lru_cache(maxsize=64)(summarise)


@lru_cache(maxsize=16)
def _pinned_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class _EndorsementKey:
    cert: x509.Certificate
    kind: str
    extensions: AmdKeyExtensions
    others: tuple[x509.Certificate, ...]


# Asked for what the evidence lacks: (report, product or None, key kind "vcek"/"vlek",
# whether that key must be fetched, time) -> (certificates to add, the product line's CRL,
# where the CRL came from). It raises EvidenceRejected naming the source when it cannot.
SnpCollateralProvider = Callable[[SnpReport, "str | None", str, bool, datetime],
                                 tuple[Sequence[bytes], bytes, str]]


def verify_report(data: bytes | SnpReport, *, now: datetime, certs: Sequence[bytes] = (),
                  collateral: SnpCollateralProvider | None = None) -> VerifiedEvidence:
    """Verify ``data`` (a raw SEV-SNP report, or one already parsed, as an Azure HCL report
    holds it) at time ``now`` with the VCEK/VLEK in ``certs``.

    Raises MalformedEvidence when ``data`` is not a report, EvidenceRejected when any check
    fails. ``certs`` items are DER or PEM; PEM bundles may add the ASK/ASVK and ARK, which
    must then be exactly the pinned ones.
    """
    report = data if isinstance(data, SnpReport) else parse_report(data)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    done: list[Check] = []

    def run(name: str, step: Callable[..., tuple[str, Any]], *args: Any) -> Any:
        try:
            detail, value = step(*args)
        except EvidenceRejected as err:
            failed = Check(name, False, err.reason)
            raise EvidenceRejected(name, err.reason, (*done, failed)) from err
        done.append(Check(name, True, detail))
        return value

    crl: tuple[bytes, str] | None = None
    if collateral is not None:
        certs, crl = run(CHECK_COLLATERAL, _collateral, collateral, report, certs, now)
    key: _EndorsementKey = run("endorsement-key", _endorsement_key, certs)
    product: str = run("product", _product, key, report)
    chain = run("cert-chain", _cert_chain, key, product, now)
    if crl is not None:
        run("crl", _crl, crl, key, product, now)
    run("report-signature", _report_signature, key, report)
    run("signer-matches", _signer_matches, key, report)
    reported: TcbVersion = run("tcb-matches", _tcb_matches, key, report, product)
    run("chip-id", _chip_id, key, report)

    return VerifiedEvidence(
        tee="snp",
        claims=_claims(report, key, product, reported),
        report_data=report.report_data,
        checks=tuple(done),
        chain=tuple(_summary(c) for c in chain),
        extra={"certificate_kind": key.kind, "csp_id": key.extensions.csp_id},
    )


def _collateral(provider: SnpCollateralProvider, report: SnpReport, certs: Sequence[bytes],
                now: datetime) -> tuple[str, tuple[list[bytes], tuple[bytes, str]]]:
    given = _load_supplied(certs)
    keys = [c for c in given if common_name(c) in _KIND_BY_CN]
    product = report.product
    kind = _KIND_BY_CN[common_name(keys[0])] if keys else "vcek"
    if keys and product is None:
        # Read from a certificate nothing has checked yet: it only chooses what to fetch,
        # and a product no KDS serves is refused here rather than asked for.
        try:
            product = parse_amd_extensions(keys[0]).product
        except (ExtensionError, ValueError) as err:
            raise _reject(CHECK_COLLATERAL, f"the supplied {kind.upper()}'s AMD extensions "
                          f"do not parse ({err}), so its collateral cannot be chosen") from None
        if product is not None and product not in PRODUCTS:
            raise _reject(CHECK_COLLATERAL, f"the supplied {kind.upper()} names product "
                          f"{product!r}, which is not supported ({', '.join(PRODUCTS)}): no "
                          "collateral is fetched for it")
    extra, crl, source = provider(report, product, kind, not keys, now)
    fetched = "VCEK, ASK/ARK chain and CRL" if not keys else "CRL"
    return f"{fetched} from {source}", ([*certs, *extra], (crl, source))


def _crl(crl: tuple[bytes, str], key: _EndorsementKey, product: str, now: datetime
         ) -> tuple[str, None]:
    data, source = crl
    signing = pinned.amd_signing_key(product, key.kind)
    return check_amd_crl(load_amd_crl(data, source), source, pinned.amd_ark(product),
                         (signing, key.cert), now), None


def _reject(name: str, reason: str) -> EvidenceRejected:
    return EvidenceRejected(name, reason)


def _load_supplied(certs: Sequence[bytes]) -> list[x509.Certificate]:
    name = "endorsement-key"
    if isinstance(certs, bytes | bytearray):
        certs = [bytes(certs)]
    loaded: list[x509.Certificate] = []
    for index, blob in enumerate(certs, 1):
        if not isinstance(blob, bytes | bytearray):
            raise _reject(name, f"certificate {index} is {type(blob).__name__}, not bytes")
        blob = bytes(blob)
        try:
            if blob.lstrip().startswith(b"-----BEGIN"):
                found = load_pem_bundle(blob)
            else:
                found = [load_certificate(blob)]
        except ValueError as err:
            raise _reject(
                name, f"certificate {index} is neither a DER nor a PEM X.509 certificate ({err})"
            ) from err
        loaded.extend(found)
    return loaded


def _endorsement_key(certs: Sequence[bytes]) -> tuple[str, _EndorsementKey]:
    name = "endorsement-key"
    loaded = _load_supplied(certs)
    if not loaded:
        raise _reject(name, UNVERIFIABLE)
    keys = [c for c in loaded if common_name(c) in _KIND_BY_CN]
    if not keys:
        given = ", ".join(repr(common_name(c)) for c in loaded)
        raise _reject(
            name, f"no VCEK or VLEK among the certificates given ({given}); {UNVERIFIABLE}"
        )
    if len(keys) > 1:
        raise _reject(name, f"{len(keys)} VCEK/VLEK certificates given; give exactly one")
    cert = keys[0]
    kind = _KIND_BY_CN[common_name(cert)]
    label = kind.upper()
    public_key = cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP384R1
    ):
        raise _reject(name, f"the {label}'s public key is not an ECDSA P-384 key")
    try:
        extensions = parse_amd_extensions(cert)
    except (ExtensionError, ValueError) as err:
        raise _reject(name, f"the {label}'s AMD extensions are malformed: {err}") from err
    spec = ENDORSEMENT_KEYS[kind]
    if getattr(extensions, spec["holder"]) is None:
        raise _reject(name, f"the {label} lacks its {spec['holder']} extension")
    if getattr(extensions, spec["not"]) is not None:
        raise _reject(
            name,
            f"the {label} carries a {spec['not']} extension, which only the "
            "other kind of endorsement key has",
        )
    others = tuple(c for c in loaded if c is not cert)
    key = _EndorsementKey(cert=cert, kind=kind, extensions=extensions, others=others)
    return f"{label} '{common_name(cert)}' (ECDSA P-384)", key


def _product(key: _EndorsementKey, report: SnpReport) -> tuple[str, str]:
    name = "product"
    label = key.kind.upper()
    product_name = key.extensions.product_name
    product = key.extensions.product
    if product_name is None or product is None:
        raise _reject(name, f"the {label} has no productName extension")
    if product not in PRODUCTS:
        raise _reject(
            name,
            f"the {label} names product {product_name!r}, which is not supported "
            f"({', '.join(PRODUCTS)})",
        )
    expected_issuer = pinned.amd_signing_key(product, key.kind)
    if key.cert.issuer != expected_issuer.subject:
        raise _reject(
            name,
            f"the {label} names product {product_name!r} but is issued by "
            f"'{key.cert.issuer.rfc4514_string()}', not by '{common_name(expected_issuer)}'",
        )
    if report.cpuid is None:
        source = f"report version {report.version} does not name its product"
    else:
        family, model, stepping = report.cpuid
        cpuid = f"CPUID family 0x{family:02x} model 0x{model:02x} stepping {stepping}"
        if report.product is None:
            raise _reject(name, f"the report's {cpuid} is not a supported product")
        if report.product != product:
            raise _reject(
                name,
                f"the report's {cpuid} is {report.product} but the {label} is for {product}",
            )
        source = f"report {cpuid}"
    detail = (
        f"{product} ({label} product name {product_name!r}, issuer "
        f"'{common_name(expected_issuer)}'; {source})"
    )
    return detail, product


def _check_pss(cert: x509.Certificate, name: str) -> None:
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(
        cert.signature_hash_algorithm, hashes.SHA384
    ):
        raise _reject(
            name,
            f"certificate '{common_name(cert)}' is not signed with RSASSA-PSS SHA-384 "
            f"({cert.signature_algorithm_oid.dotted_string})",
        )


def _check_link(cert: x509.Certificate, issuer: x509.Certificate, name: str, known: bool) -> None:
    if not known:
        pair = (cert.public_bytes(Encoding.DER), _pinned_der(issuer))
        if pair in _VERIFIED_ENDORSEMENT_LINKS:
            _VERIFIED_ENDORSEMENT_LINKS.move_to_end(pair)
            return
        _check_pss(cert, name)
        check_issued_by(cert, issuer, name)
        _VERIFIED_ENDORSEMENT_LINKS[pair] = None
        if len(_VERIFIED_ENDORSEMENT_LINKS) > MAX_REMEMBERED_ENDORSEMENT_LINKS:
            _VERIFIED_ENDORSEMENT_LINKS.popitem(last=False)
        return
    pair = (_pinned_der(cert), _pinned_der(issuer))
    if pair in _VERIFIED_PINNED_LINKS:
        return
    _check_pss(cert, name)
    check_issued_by(cert, issuer, name)
    _VERIFIED_PINNED_LINKS.add(pair)


def _cert_chain(
    key: _EndorsementKey, product: str, now: datetime
) -> tuple[str, tuple[x509.Certificate, ...]]:
    name = "cert-chain"
    signer_name = ENDORSEMENT_KEYS[key.kind]["signer"]
    signing = pinned.amd_signing_key(product, key.kind)
    ark = pinned.amd_ark(product)
    pinned_der = {_pinned_der(signing), _pinned_der(ark)}
    for other in key.others:
        if other.public_bytes(Encoding.DER) not in pinned_der:
            raise _reject(
                name,
                f"certificate '{common_name(other)}' given with --certs is not the pinned AMD "
                f"{signer_name} or ARK for {product.capitalize()} {key.kind.upper()}s "
                f"('{common_name(signing)}', '{common_name(ark)}')",
            )
    links = ((key.cert, signing, False), (signing, ark, True), (ark, ark, True))
    for cert, issuer, known in links:
        check_validity(cert, now, name)
        _check_link(cert, issuer, name, known)
    detail = (
        f"{key.kind.upper()} <- '{common_name(signing)}' ({signer_name}) <- "
        f"'{common_name(ark)}' (pinned ARK), RSASSA-PSS SHA-384, all valid at {now.isoformat()}"
    )
    return detail, (key.cert, signing, ark)


def _report_signature(key: _EndorsementKey, report: SnpReport) -> tuple[str, None]:
    name = "report-signature"
    if report.signing_key == "none":
        raise _reject(name, "the report says it is unsigned (SIGNER_INFO SIGNING_KEY is none)")
    detail = f"ECDSA P-384/SHA-384 over bytes 0x000..0x{snp_offsets.SIGNED_END:03x}"
    public_key = key.cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # checked in endorsement-key
    point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    remembered = (report.raw, point)
    if remembered in _VERIFIED_REPORT_SIGNATURES:
        _VERIFIED_REPORT_SIGNATURES.move_to_end(remembered)
        return detail, None
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        public_key.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise _reject(
            name,
            f"the report's ECDSA P-384 signature does not verify with the {key.kind.upper()}'s "
            "public key (the report was altered or signed by another key)",
        ) from None
    _VERIFIED_REPORT_SIGNATURES[remembered] = None
    if len(_VERIFIED_REPORT_SIGNATURES) > MAX_REMEMBERED_REPORT_SIGNATURES:
        _VERIFIED_REPORT_SIGNATURES.popitem(last=False)
    return detail, None


def _signer_matches(key: _EndorsementKey, report: SnpReport) -> tuple[str, None]:
    if report.signing_key != key.kind:
        raise _reject(
            "signer-matches",
            f"the report's SIGNER_INFO says it was signed by the {report.signing_key.upper()} "
            f"but the certificate given is a {key.kind.upper()}",
        )
    return f"SIGNER_INFO names the {key.kind.upper()}", None


def _format_tcb(parts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _tcb_matches(key: _EndorsementKey, report: SnpReport, product: str) -> tuple[str, TcbVersion]:
    name = "tcb-matches"
    label = key.kind.upper()
    reported = report.tcb("reported", product)
    certified = key.extensions.spl
    named = reported.to_dict()
    missing = [c for c in named if c not in certified]
    if missing:
        raise _reject(
            name, f"the {label} lacks the TCB extension(s) for {', '.join(missing)} ({product})"
        )
    compared = {c: v for c, v in reported.components().items() if c in certified}
    differing = {c: v for c, v in compared.items() if certified[c] != v}
    if differing:
        raise _reject(
            name,
            f"the {label} was issued for TCB "
            f"{_format_tcb({c: certified[c] for c in differing})} but the report's "
            f"reported_tcb has {_format_tcb(differing)}",
        )
    return f"reported_tcb {_format_tcb(named)} equals the {label}'s TCB", reported


def _chip_id(key: _EndorsementKey, report: SnpReport) -> tuple[str, None]:
    if key.kind == "vlek":
        return "not applicable: a VLEK is not tied to one chip", None
    if report.mask_chip_key:
        return "not checked: the host masked CHIP_ID (SIGNER_INFO MASK_CHIP_KEY)", None
    hwid = key.extensions.hwid
    assert hwid is not None  # required for a VCEK in endorsement-key
    # Turin's hwID is 8 bytes; its report pads CHIP_ID with zeros to 64.
    expected = hwid.ljust(len(report.chip_id), b"\0")
    if report.chip_id != expected:
        raise _reject(
            "chip-id",
            f"the report's CHIP_ID {report.chip_id.hex()} is not the VCEK's hwID {hwid.hex()}",
        )
    return f"CHIP_ID equals the VCEK's hwID ({len(hwid)} bytes)", None


def _version(parts: tuple[int, int, int]) -> str:
    return ".".join(str(p) for p in parts)


def _claims(
    report: SnpReport, key: _EndorsementKey, product: str, reported: TcbVersion
) -> dict[str, Any]:
    return {
        "measurement": report.measurement.hex(),
        "host_data": report.host_data.hex(),
        "policy": report.policy,
        "debug": report.debug,
        "vmpl": report.vmpl,
        "reported_tcb": reported.to_dict(),
        "committed_tcb": report.tcb("committed", product).to_dict(),
        "current_tcb": report.tcb("current", product).to_dict(),
        "launch_tcb": report.tcb("launch", product).to_dict(),
        "chip_id": report.chip_id.hex(),
        "report_id": report.report_id.hex(),
        "report_id_ma": report.report_id_ma.hex(),
        "signer": key.kind,
        "product": product,
        "guest_svn": report.guest_svn,
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
        "report_version": report.version,
        "report_data": report.report_data.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "author_key_digest": report.author_key_digest.hex(),
        "policy_flags": report.policy_flags,
        "platform_info": report.platform_info,
        "platform_flags": report.platform_flags,
        "mask_chip_id": report.mask_chip_key,
        "author_key_en": report.author_key_en,
        "current_version": _version(report.current_version),
        "committed_version": _version(report.committed_version),
    }
