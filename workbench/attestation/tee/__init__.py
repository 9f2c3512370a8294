"""Evidence providers: how a kernel obtains evidence from the TEE it runs in.

``get_provider(name)`` returns an object with ``name``, ``tee`` and
``evidence(report_data: bytes) -> bytes``; a provider whose platform hands out the
certificate of the key that signed the evidence (SEV-SNP's VCEK through configfs-tsm) also
has ``certified_evidence(report_data) -> (evidence, certificates)``. Providers never
substitute for one another: when hardware is asked for and is missing, the provider raises
``TeeUnavailable`` naming the interface it looked for; nothing falls back to the simulated
TEE.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from workbench.errors import WorkbenchError


class EvidenceProvider(Protocol):
    name: str
    tee: str

    def evidence(self, report_data: bytes) -> bytes: ...


def certified_evidence(provider: EvidenceProvider, report_data: bytes
                       ) -> tuple[bytes, tuple[bytes, ...]]:
    """The evidence over ``report_data`` and the DER certificates that came with it."""
    method = getattr(provider, "certified_evidence", None)
    if method is None:
        return provider.evidence(report_data), ()
    evidence, certificates = method(report_data)
    return evidence, tuple(certificates)


class TeeUnavailable(WorkbenchError):
    """The requested TEE interface does not exist on this machine."""


# name -> (module, class); imported on demand so one provider's needs never break another.
PROVIDERS: dict[str, tuple[str, str]] = {
    "simulated": ("workbench.attestation.tee.simulated", "SimulatedProvider"),
    "configfs-tsm": ("workbench.attestation.tee.configfs_tsm", "ConfigfsTsmProvider"),
    "gramine": ("workbench.attestation.tee.gramine", "GramineProvider"),
    "azure-vtpm": ("workbench.attestation.tee.azure_vtpm", "AzureVtpmProvider"),
}


def get_provider(name: str, **options: Any) -> EvidenceProvider:
    """The provider called ``name``; ``options`` go to its constructor (e.g. ``root=``)."""
    try:
        module, cls = PROVIDERS[name]
    except KeyError:
        raise WorkbenchError(
            f"unknown TEE provider '{name}' (known: {', '.join(PROVIDERS)})"
        ) from None
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = [
    "PROVIDERS", "EvidenceProvider", "TeeUnavailable", "certified_evidence", "get_provider",
]
