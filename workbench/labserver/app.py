"""``WorkbenchLab``: the Jupyter Server extension behind the lab extension.

It holds what the server trusts (the broker's signing keys, the simulated-TEE platform keys,
DCAP collateral) as configurable traits and answers the frontend's routes with its own
verdict. It never talks to a kernel: the frontend forwards what the kernel sent over the
comm, so the same checks work for kernels behind a Kernel Gateway.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, List, Unicode, default

from workbench.kernel.transport import TransportError, server_key
from workbench.labserver.keys import BrokerKeys
from workbench.labserver.routes import ROUTES
from workbench.protocol.jwks import JWKS_PATH, JwksProblem, jwks_url
from workbench.verdict import KernelReport, TransportContext, TrustSettings, Verdict, judge

BROKER_URL_ENV = "WORKBENCH_KBS_URL"


# Comma-separated collateral services, as the hub forwards them (deploy/jupyterhub).
PCS_URLS_ENV = "WORKBENCH_COLLATERAL_PCS_URLS"
KDS_URLS_ENV = "WORKBENCH_COLLATERAL_KDS_URLS"


def _env_list(name: str) -> list[str]:
    return [item for item in os.environ.get(name, "").split(",") if item]


class WorkbenchLab(ExtensionApp):
    name = "workbench_labserver"
    description = "Re-verifies confidential kernels' attestation for the lab extension"
    load_other_extensions = True

    broker_url = Unicode(
        help=f"URL of the key broker whose tokens this server accepts (default: ${BROKER_URL_ENV})"
    ).tag(config=True)
    broker_public_keys = List(
        Unicode(),
        help="Files holding the broker's token-signing public key(s): JWK, JWK set or PEM. "
             "When given, they are the only keys trusted and nothing is fetched.",
    ).tag(config=True)
    broker_jwks_url = Unicode(
        help=f"Where the broker publishes its keys (default: broker_url + {JWKS_PATH}); "
             "used only when broker_public_keys is empty",
    ).tag(config=True)
    jwks_cache_seconds = Float(300.0, help="How long fetched broker keys are reused").tag(
        config=True)
    fetch_timeout_seconds = Float(5.0, help="Timeout for fetching the broker's keys").tag(
        config=True)
    simulated_platform_keys = List(
        Unicode(),
        help="PEM files of simulated-TEE platform keys to trust (default: the local "
             "development key under $WORKBENCH_HOME, if any)",
    ).tag(config=True)
    dcap_collateral_dir = Unicode(
        help="Directory of Intel PCS collateral for SGX/TDX TCB status (optional)"
    ).tag(config=True)
    collateral_pcs_urls = List(
        Unicode(),
        help="PCS v4-compatible services (PCCS, Azure THIM, Intel PCS) Intel collateral is "
             "fetched from, in order (docs/attestation-dcap.md)",
    ).tag(config=True)
    collateral_kds_urls = List(
        Unicode(), help="AMD KDS-compatible services for VCEKs and AMD CRLs, in order",
    ).tag(config=True)
    collateral_cache_dir = Unicode(
        help="Collateral cache folder (default $WORKBENCH_HOME/kbs/collateral when a URL is "
             "set)",
    ).tag(config=True)

    @default("collateral_pcs_urls")
    def _default_pcs_urls(self) -> list[str]:
        return _env_list(PCS_URLS_ENV)

    @default("collateral_kds_urls")
    def _default_kds_urls(self) -> list[str]:
        return _env_list(KDS_URLS_ENV)

    @default("broker_url")
    def _default_broker_url(self) -> str:
        return os.environ.get(BROKER_URL_ENV, "")

    def initialize_settings(self) -> None:
        published = self.broker_jwks_url or (jwks_url(self.broker_url) if self.broker_url
                                             else "")
        self.broker_keys = BrokerKeys(list(self.broker_public_keys), published,
                                      cache_s=self.jwks_cache_seconds,
                                      timeout_s=self.fetch_timeout_seconds)
        self._collateral: Any = None
        if self.dcap_collateral_dir:
            from workbench.attestation.verify.collateral import load_collateral_dir

            self._collateral = load_collateral_dir(self.dcap_collateral_dir)
        elif self.collateral_pcs_urls or self.collateral_kds_urls or self.collateral_cache_dir:
            from workbench.attestation.collateral.service import open_service

            self._collateral = open_service(
                self.collateral_cache_dir or None,
                pcs_urls=tuple(self.collateral_pcs_urls),
                kds_urls=tuple(self.collateral_kds_urls))
        self.log.info("workbench: broker %s, keys %s", self.broker_url or "(none)",
                      self.broker_keys.source)

    def initialize_handlers(self) -> None:
        self.handlers.extend((route.path, route.handler) for route in ROUTES)

    def transport_for(self, kernel_id: str | None) -> TransportContext | None:
        """This server's own connection to ``kernel_id``, whose key the evidence must bind.

        None (the check is skipped) without a kernel id, for a kernel this server does not
        run, and behind a Kernel Gateway: there the gateway holds the ZMQ connection.
        """
        if not kernel_id or getattr(getattr(self.serverapp, "gateway_config", None),
                                    "gateway_enabled", False):
            return None
        try:
            manager = self.serverapp.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return None
        source = f"this server's connection to kernel {kernel_id}"
        try:
            return TransportContext(server_key(manager), source)
        except TransportError as err:
            self.log.warning("workbench: kernel %s has an unusable server key: %s", kernel_id,
                             err)
            return TransportContext(None, source)

    async def judge(self, report: KernelReport, kernel_id: str | None = None) -> Verdict:
        now = datetime.now(UTC)
        try:
            keys, problem = await self.broker_keys.get(), ""
        except JwksProblem as err:
            keys, problem = [], str(err)
        trust = TrustSettings(
            broker_keys=keys, broker_url=self.broker_url, key_source=self.broker_keys.source,
            key_problem=problem,
            simulated_keys=list(self.simulated_platform_keys) or None,
            collateral=self._collateral, transport=self.transport_for(kernel_id),
        )
        verdict = judge(report, trust, now=now)
        signature = verdict.check("token-signature")
        if signature is not None and not signature.ok and not self.broker_public_keys:
            # A rotated broker key looks like a bad signature until the set is fetched again.
            self.broker_keys.forget()
        return verdict
