"""Intel DCAP collateral from a folder: TCB info, QE identity, TCB signing chain, CRLs.

Files are recognised by content, not by name, so both the Intel PCS response layout and
the names other projects use work (``tcbInfo.json``, ``sample_tcbInfo_response``,
``enclaveIdentity.json``, ``tcbInfoIssuerChain.pem``, ``pckcrl``, ``rootcrl.der``...):

* a JSON object with ``tcbInfo`` -> TCB info; with ``enclaveIdentity`` or ``qeIdentity``
  -> QE identity (kept byte-exact: Intel signs the inner object's bytes as sent);
* PEM certificates whose first one is "Intel SGX TCB Signing" -> the signing chain of
  TCB info and QE identity; a chain starting at a PCK CA (the PCK CRL issuer chain) is
  recognised and not needed, since the PCK CRL is checked against the CA in the quote;
* a CRL (DER, PEM or hex-encoded DER, as PCS versions differ) issued by the Intel SGX
  Root CA -> root CRL; issued by an Intel SGX PCK CA -> PCK CRL.

A folder may hold TCB info for several platforms; the verifier picks the one matching the
quote's TEE and FMSPC. Loading checks form only: signatures, validity and revocation are
checked by :func:`workbench.attestation.verify.dcap.verify_quote`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from workbench.attestation.formats.errors import MalformedEvidence
from workbench.attestation.formats.intel_collateral import (
    EnclaveIdentity,
    TcbInfo,
    parse_enclave_identity,
    parse_tcb_info,
    signed_kind,
)
from workbench.attestation.verify.certs import common_name, load_pem_bundle
from workbench.attestation.verify.intel_chain import CERT_DECODE_ERRORS, CertChain
from workbench.errors import InputError, about

TCB_SIGNING_CN = "Intel SGX TCB Signing"
ROOT_CA_CN = "Intel SGX Root CA"
PCK_CA_CNS = ("Intel SGX PCK Platform CA", "Intel SGX PCK Processor CA")
# Names that are never collateral, so a README next to the files does no harm.
IGNORED_SUFFIXES = (".md", ".txt", ".rst")
MAX_FILE_SIZE = 1024 * 1024


@dataclass(frozen=True)
class IntelCrl:
    """A CRL with the bytes it was loaded from (the identity used for caching checks)."""

    name: str
    der: bytes
    crl: x509.CertificateRevocationList = field(compare=False, repr=False)


@dataclass(frozen=True)
class DcapCollateral:
    """Collateral as loaded; each item keeps the name of the file it came from."""

    source: str
    tcb_infos: tuple[tuple[str, TcbInfo], ...]
    qe_identities: tuple[tuple[str, EnclaveIdentity], ...]
    signing_chains: tuple[tuple[str, CertChain], ...]
    pck_crls: tuple[IntelCrl, ...] = ()
    root_crls: tuple[IntelCrl, ...] = ()


def _crl_issuer_cn(crl: x509.CertificateRevocationList) -> str:
    names = crl.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else crl.issuer.rfc4514_string()


def load_crl(name: str, data: bytes) -> IntelCrl | None:
    """A CRL in DER, PEM or hex-encoded DER (PCS versions differ); None if it is none."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN X509 CRL-----"):
            crl = x509.load_pem_x509_crl(text)
            der = crl.public_bytes(Encoding.DER)
        elif text[:1] == b"\x30":
            # Loading checked that ``data`` is one whole CRL: its bytes are its DER.
            der = data
            crl = x509.load_der_x509_crl(data)
        else:
            der = bytes.fromhex(text.decode("ascii"))
            crl = x509.load_der_x509_crl(der)
    except (*CERT_DECODE_ERRORS, UnicodeDecodeError):
        return None
    return IntelCrl(name, der, crl)


class _Loader:
    def __init__(self, source: Path) -> None:
        self.source = source
        self.tcb_infos: list[tuple[str, TcbInfo]] = []
        self.identities: list[tuple[str, EnclaveIdentity]] = []
        self.chains: list[tuple[str, CertChain]] = []
        self.pck_crls: list[IntelCrl] = []
        self.root_crls: list[IntelCrl] = []

    def add_json(self, name: str, data: bytes) -> None:
        try:
            kind = signed_kind(data)
            if kind == "tcbInfo":
                self.tcb_infos.append((name, parse_tcb_info(data)))
            elif kind == "enclaveIdentity":
                self.identities.append((name, parse_enclave_identity(data)))
            else:
                raise MalformedEvidence(
                    "a JSON file here must be a PCS response with 'tcbInfo' or "
                    "'enclaveIdentity' (or 'qeIdentity') and 'signature'"
                )
        except MalformedEvidence as err:
            raise InputError(about(name, f"bad Intel collateral: {err}")) from None

    def add_chain(self, name: str, data: bytes) -> None:
        try:
            chain = tuple(load_pem_bundle(data))
            leaf = common_name(chain[0])
        except (*CERT_DECODE_ERRORS, IndexError) as err:
            raise InputError(about(name, f"bad PEM certificate chain: {err}")) from None
        if leaf == TCB_SIGNING_CN:
            self.chains.append((name, CertChain.of(chain)))
        elif leaf not in PCK_CA_CNS:
            raise InputError(
                about(name, f"certificate chain starts at '{leaf}', expected '{TCB_SIGNING_CN}'")
            )

    def add_crl(self, name: str, data: bytes) -> None:
        loaded = load_crl(name, data)
        if loaded is None:
            raise InputError(
                about(
                    name,
                    "not recognised as Intel collateral (expected a PCS JSON response, "
                    "a PEM certificate chain or a CRL)",
                )
            )
        try:
            issuer = _crl_issuer_cn(loaded.crl)
        except (ValueError, TypeError) as err:
            raise InputError(about(name, f"bad CRL: {err}")) from None
        if issuer == ROOT_CA_CN:
            self.root_crls.append(loaded)
        elif issuer in PCK_CA_CNS:
            self.pck_crls.append(loaded)
        else:
            raise InputError(about(name, f"CRL issued by '{issuer}', not an Intel SGX CA"))

    def add_file(self, path: Path) -> None:
        name = str(path)
        try:
            if path.stat().st_size > MAX_FILE_SIZE:
                raise InputError(about(name, "too large to be Intel collateral"))
            data = path.read_bytes()
        except OSError as err:
            raise InputError(about(name, f"cannot read: {err.strerror or err}")) from None
        head = data.lstrip()
        if head.startswith(b"{"):
            self.add_json(name, data)
        elif b"-----BEGIN CERTIFICATE-----" in head:
            self.add_chain(name, data)
        else:
            self.add_crl(name, data)


def _required(items: list, what: str, source: Path) -> None:
    if not items:
        raise InputError(about(source, f"no {what} found in the collateral folder"))


def load_collateral_dir(
    path: str | Path, *, issuer_chain: str | Path | bytes | None = None
) -> DcapCollateral:
    """Load every collateral file of ``path``; ``issuer_chain`` adds a TCB signing chain.

    Raises InputError naming the file (or the folder) when something is missing or bad.
    """
    source = Path(path)
    if not source.is_dir():
        raise InputError(about(source, "not a folder of Intel collateral"))
    loader = _Loader(source)
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() in IGNORED_SUFFIXES:
            continue
        if entry.name.upper().startswith("README") or not entry.is_file():
            continue
        loader.add_file(entry)
    if issuer_chain is not None:
        if isinstance(issuer_chain, bytes):
            loader.add_chain("issuer chain", issuer_chain)
        else:
            chain_path = Path(issuer_chain)
            try:
                loader.add_chain(str(chain_path), chain_path.read_bytes())
            except OSError as err:
                raise InputError(about(chain_path, f"cannot read: {err.strerror}")) from None
    _required(loader.tcb_infos, "TCB info (a PCS 'tcbInfo' response, e.g. tcbInfo.json)", source)
    _required(
        loader.identities,
        "QE identity (a PCS 'enclaveIdentity' response, e.g. qeIdentity.json)",
        source,
    )
    _required(
        loader.chains,
        "TCB signing chain (tcbInfoIssuerChain.pem, the PCS TCB-Info-Issuer-Chain header; "
        "or give it separately: --collateral-chain FILE, issuer_chain=)",
        source,
    )
    return DcapCollateral(
        source=str(source),
        tcb_infos=tuple(loader.tcb_infos),
        qe_identities=tuple(loader.identities),
        signing_chains=tuple(loader.chains),
        pck_crls=tuple(loader.pck_crls),
        root_crls=tuple(loader.root_crls),
    )
