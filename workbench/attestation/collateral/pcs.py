"""Intel PCS API v4 requests (also served by PCCS and Azure's THIM cache).

Paths and response headers as Intel documents them: TCB info and QE identity come with
their signer's chain in ``TCB-Info-Issuer-Chain`` / ``SGX-Enclave-Identity-Issuer-Chain``
(URL-encoded PEM), the PCK CRL with ``SGX-PCK-CRL-Issuer-Chain``.
"""

from __future__ import annotations

from workbench.attestation.collateral.requests import CollateralRequest

TCB_INFO_CHAIN = "TCB-Info-Issuer-Chain"
IDENTITY_CHAIN = "SGX-Enclave-Identity-Issuer-Chain"
PCK_CRL_CHAIN = "SGX-PCK-CRL-Issuer-Chain"
# PCK CA common name -> the ``ca`` query value of the PCK CRL request.
PCK_CA_PARAM = {
    "Intel SGX PCK Platform CA": "platform",
    "Intel SGX PCK Processor CA": "processor",
}
# TEE -> path prefix of its TCB info and QE identity.
TEE_PREFIX = {"sgx": "/sgx/certification/v4", "tdx": "/tdx/certification/v4"}
SGX = TEE_PREFIX["sgx"]


def tcb_info(tee: str, fmspc: bytes) -> CollateralRequest:
    return CollateralRequest("pcs", "tcb-info", f"{TEE_PREFIX[tee]}/tcb",
                             (("fmspc", fmspc.hex()),), TCB_INFO_CHAIN)


def qe_identity(tee: str) -> CollateralRequest:
    return CollateralRequest("pcs", "qe-identity", f"{TEE_PREFIX[tee]}/qe/identity", (),
                             IDENTITY_CHAIN)


def pck_crl(ca_common_name: str) -> CollateralRequest:
    return CollateralRequest("pcs", "crl", f"{SGX}/pckcrl",
                             (("ca", PCK_CA_PARAM[ca_common_name]), ("encoding", "der")),
                             PCK_CRL_CHAIN)


def root_crl() -> CollateralRequest:
    return CollateralRequest("pcs", "crl", f"{SGX}/rootcacrl")
