"""Pinned vendor roots, shipped in the package and pinned by SHA-256 of their DER encoding.

The PEM bundles under ``roots/`` are only storage: a certificate is trusted because its
fingerprint is in the tables below, so editing a bundle can remove trust but never add it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from workbench.attestation.verify.certs import fingerprint, load_pem_bundle

INTEL_SGX_ROOT_CA = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

AMD_ARK = {
    "milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}

# (product, signer) -> the intermediate that signs that kind of endorsement key:
# the ASK signs VCEKs, the ASVK signs VLEKs.
AMD_SIGNING_KEY = {
    ("milan", "vcek"): "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
    ("milan", "vlek"): "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    ("genoa", "vcek"): "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
    ("genoa", "vlek"): "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    ("turin", "vcek"): "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
    ("turin", "vlek"): "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
}


@cache
def _bundle(vendor: str) -> dict[str, x509.Certificate]:
    data = resources.files("workbench.attestation.verify").joinpath("roots", f"{vendor}.pem")
    return {fingerprint(c): c for c in load_pem_bundle(data.read_bytes())}


def _by_fingerprint(vendor: str, fp: str) -> x509.Certificate:
    try:
        return _bundle(vendor)[fp]
    except KeyError:
        message = f"pinned {vendor} certificate {fp} is missing from the package"
        raise RuntimeError(message) from None


@cache
def intel_sgx_root() -> x509.Certificate:
    """The pinned root, its self-signature checked once per process: it is a constant of
    the package, so chains ending at it need not check that link again."""
    root = _by_fingerprint("intel", INTEL_SGX_ROOT_CA)
    root.verify_directly_issued_by(root)  # InvalidSignature: a damaged package
    return root


@cache
def intel_sgx_root_der() -> bytes:
    return intel_sgx_root().public_bytes(Encoding.DER)


def amd_ark(product: str) -> x509.Certificate:
    return _by_fingerprint("amd", AMD_ARK[product])


def amd_signing_key(product: str, signer: str) -> x509.Certificate:
    return _by_fingerprint("amd", AMD_SIGNING_KEY[(product, signer)])
