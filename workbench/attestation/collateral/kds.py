"""AMD Key Distribution Service requests (KDS-compatible caches serve the same paths).

The VCEK is addressed by product line, chip id (hex) and the reported TCB's SPLs; the
ASK/ARK chain (PEM) and the CRL of the product line have fixed paths.
"""

from __future__ import annotations

from workbench.attestation.collateral.requests import CollateralRequest

PREFIX = "/vcek/v1"
# Key kind -> path prefix of its chain and CRL.
KIND_PREFIX = {"vcek": "/vcek/v1", "vlek": "/vlek/v1"}
# KDS product path segment per product line.
PRODUCT_PATH = {"milan": "Milan", "genoa": "Genoa", "turin": "Turin"}
# Query parameter per reported TCB component, in KDS order.
SPL_PARAMS = (("blSPL", "bootloader"), ("teeSPL", "tee"), ("snpSPL", "snp"),
              ("ucodeSPL", "microcode"))


def vcek(product: str, hwid: bytes, tcb: dict[str, int]) -> CollateralRequest:
    """``hwid``: the report's chip id (Turin's KDS takes its first 8 bytes)."""
    chip = hwid[:8] if product == "turin" else hwid
    query = tuple((param, str(tcb[part])) for param, part in SPL_PARAMS)
    if product == "turin":
        query = (("fmcSPL", str(tcb.get("fmc", 0))), *query)
    return CollateralRequest("kds", "cert", f"{PREFIX}/{PRODUCT_PATH[product]}/{chip.hex()}",
                             query)


def cert_chain(product: str, kind: str = "vcek") -> CollateralRequest:
    return CollateralRequest("kds", "chain",
                             f"{KIND_PREFIX[kind]}/{PRODUCT_PATH[product]}/cert_chain")


def crl(product: str, kind: str = "vcek") -> CollateralRequest:
    return CollateralRequest("kds", "crl", f"{KIND_PREFIX[kind]}/{PRODUCT_PATH[product]}/crl")
