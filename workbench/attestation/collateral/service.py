"""The collateral a verifier needs, from the cache or the configured sources.

Fail closed: an answer that cannot be fetched, cannot be read or has expired raises
:class:`CollateralRefused` naming the URL and the reason; an expired entry is never
returned. Signatures, chains and revocation are checked by the verifiers, which name the
URL each item came from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workbench.attestation.collateral import kds, pcs
from workbench.attestation.collateral.cache import CollateralCache, Entry, make_entry
from workbench.attestation.collateral.errors import CollateralRefused
from workbench.attestation.collateral.items import Unreadable, read_chain
from workbench.attestation.collateral.requests import CollateralRequest
from workbench.attestation.collateral.sources import FetchFailed, Sources
from workbench.attestation.formats.dcap import Quote
from workbench.attestation.formats.snp import SnpReport
from workbench.attestation.verify.certs import common_name
from workbench.attestation.verify.collateral import DcapCollateral
from workbench.attestation.verify.intel_chain import CertChain
from workbench.attestation.verify.intel_extensions import PckExtensions
from workbench.home import workbench_home

log = logging.getLogger("workbench.collateral")
# Entries are renewed this long before their nextUpdate (Intel's is ~30 days ahead).
DEFAULT_REFRESH_AHEAD = timedelta(days=7)
# Seconds a platform's assembled collateral is reused before the cache files are stat'ed.
RECHECK_S = 1.0
# Product lines whose firmware reports version 2 (Turin's reports are version 3 or later).
V2_PRODUCTS = ("milan", "genoa")
WHAT = {"tcb-info": "TCB info", "qe-identity": "QE identity", "crl": "CRL",
        "cert": "certificate", "chain": "certificate chain"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CollateralService:
    def __init__(self, cache: CollateralCache, sources: Sources, *,
                 clock: Callable[[], datetime] = _utc_now,
                 refresh_ahead: timedelta = DEFAULT_REFRESH_AHEAD) -> None:
        self.cache = cache
        self.sources = sources
        self.clock = clock
        self.refresh_ahead = refresh_ahead
        self._assembled: dict[tuple[int, ...],
                              tuple[tuple[Entry, ...], DcapCollateral]] = {}
        self._recent: dict[tuple[str, bytes, bytes],
                           tuple[float, datetime, DcapCollateral]] = {}

    # --- one request ----------------------------------------------------------------

    def _fetch(self, request: CollateralRequest) -> Entry:
        """Fetch and store ``request``; raises FetchFailed or Unreadable (naming the URL)."""
        fetched = self.sources.fetch(request)
        try:
            entry = make_entry(request, fetched.url, fetched.body, fetched.chain, self.clock())
            if request.chain_header:
                read_chain(entry.chain)
        except Unreadable as err:
            raise Unreadable(f"{fetched.url}: not {WHAT[request.kind]}: {err}") from None
        self.cache.write(entry)
        return entry

    def get(self, request: CollateralRequest, now: datetime) -> Entry:
        """The entry for ``request`` usable at ``now``, fetching it on a miss."""
        entry = self.cache.read(request.key)
        if entry is not None and entry.usable(now):
            return entry
        with self.cache.locked(request.key):
            entry = self.cache.read(request.key)  # another thread or process may have fetched
            if entry is not None and entry.usable(now):
                return entry
            what = WHAT[request.kind]
            try:
                fresh = self._fetch(request)
            except FetchFailed as err:
                if entry is not None:
                    raise CollateralRefused(
                        f"{what} from {entry.url} expired at {entry.next_update.isoformat()} "
                        f"(evaluated at {now.isoformat()}) and fetching it again failed: {err}"
                    ) from None
                raise CollateralRefused(f"cannot fetch {what} {request.key}: {err}") from None
            except Unreadable as err:
                raise CollateralRefused(str(err)) from None
        if not fresh.usable(now):
            raise CollateralRefused(
                f"{what} from {fresh.url} expired: its nextUpdate is "
                f"{fresh.next_update.isoformat()} (evaluated at {now.isoformat()})")
        return fresh

    def prime(self, request: CollateralRequest) -> Entry:
        """Fetch ``request`` now whatever the cache holds (``workbench collateral fetch``)."""
        with self.cache.locked(request.key):
            try:
                return self._fetch(request)
            except (FetchFailed, Unreadable) as err:
                raise CollateralRefused(f"cannot fetch {request.key}: {err}") from None

    # --- refresh ahead of expiry ------------------------------------------------------

    def refresh_due(self, now: datetime | None = None) -> list[str]:
        """Fetch again every entry within ``refresh_ahead`` of its nextUpdate. A failure
        keeps the entry (served while still valid) and is logged as a warning; returns
        the warnings."""
        now = now or self.clock()
        warnings = []
        for entry in self.cache.entries():
            if entry.next_update - self.refresh_ahead > now:
                continue
            with self.cache.locked(entry.request.key):
                current = self.cache.read(entry.request.key) or entry
                if current.next_update - self.refresh_ahead > now:
                    continue  # another process refreshed it meanwhile
                try:
                    self._fetch(entry.request)
                except (FetchFailed, Unreadable) as err:
                    state = (f"still served until {current.next_update.isoformat()}"
                             if current.usable(now) else
                             f"expired at {current.next_update.isoformat()}, not served")
                    message = (f"refreshing {WHAT[entry.request.kind]} {entry.request.key} "
                               f"failed ({err}); the cached copy from {current.url} is {state}")
                    log.warning(message)
                    warnings.append(message)
        return warnings

    # --- what the verifiers take ------------------------------------------------------

    def dcap(self, quote: Quote, pck: PckExtensions, chain: CertChain,
             now: datetime) -> DcapCollateral:
        """TCB info, QE identity, PCK CRL and root CRL for ``quote`` (whose PCK chain
        ``chain`` and extensions ``pck`` the verifier has checked)."""
        # Keyed by the PCK CA's bytes, not its name: a warm call then decodes no name.
        platform = (quote.tee, pck.fmspc, chain.ders[1])
        recent = self._recent.get(platform)
        # Served from memory while every item is valid at ``now`` (the earliest nextUpdate
        # is kept) and the cache files were looked at less than RECHECK_S ago, so a refresh
        # by another process is seen soon.
        if recent is not None and time.monotonic() - recent[0] < RECHECK_S \
                and now <= recent[1]:
            return recent[2]
        ca = common_name(chain.certs[1])
        if ca not in pcs.PCK_CA_PARAM:
            raise CollateralRefused(f"the PCK certificate is issued by '{ca}', not a PCK CA")
        entries = (
            self.get(pcs.tcb_info(quote.tee, pck.fmspc), now),
            self.get(pcs.qe_identity(quote.tee), now),
            self.get(pcs.pck_crl(ca), now),
            self.get(pcs.root_crl(), now),
        )
        memo_key = tuple(id(e) for e in entries)
        memo = self._assembled.get(memo_key)
        # The memo holds the entries themselves: an id is only unique while its object lives,
        # and entries read again after a refresh may reuse the ids of freed ones.
        if memo is not None and all(a is b for a, b in zip(memo[0], entries, strict=True)):
            found = memo[1]
        else:
            found = _assemble(entries)
            if len(self._assembled) > 64:
                self._assembled.clear()
            self._assembled[memo_key] = (entries, found)
        if len(self._recent) > 256:
            self._recent.clear()
        self._recent[platform] = (time.monotonic(), min(e.next_update for e in entries), found)
        return found

    def snp(self, report: SnpReport, product: str | None, kind: str, need_key: bool,
            now: datetime) -> tuple[list[bytes], bytes, str]:
        """For a SEV-SNP report: the VCEK (when ``need_key``) by chip id and reported TCB
        with the ASK/ARK chain, and the product line's CRL with its URL.

        A version 2 report does not name its product line; its VCEK is asked for under each
        line such firmware exists for, and the verifier then checks the one KDS knows."""
        if need_key and kind != "vcek":
            raise CollateralRefused("a VLEK cannot be fetched by chip id: it must come with "
                                    "the evidence")
        if product is not None and product not in kds.PRODUCT_PATH:
            raise CollateralRefused(f"AMD KDS serves no product line {product!r}")
        candidates = (product,) if product else V2_PRODUCTS
        refusals = []
        for line in candidates:
            try:
                return self._snp_for(report, line, kind, need_key, now)
            except CollateralRefused as err:
                refusals.append(err.reason)
        raise CollateralRefused("; ".join(refusals))

    def _snp_for(self, report: SnpReport, product: str, kind: str, need_key: bool,
                 now: datetime) -> tuple[list[bytes], bytes, str]:
        certs = []
        if need_key:
            tcb = report.tcb("reported", product).to_dict()
            certs.append(self.get(kds.vcek(product, report.chip_id, tcb), now).body)
            certs.append(self.get(kds.cert_chain(product, kind), now).body)
        crl = self.get(kds.crl(product, kind), now)
        return certs, crl.body, crl.url


def _assemble(entries: tuple[Entry, ...]) -> DcapCollateral:
    tcb, identity, pck_crl, root_crl = entries
    chains: dict[bytes, tuple[str, CertChain]] = {}
    for entry in (tcb, identity):
        if entry.chain not in chains:
            chains[entry.chain] = (f"{entry.request.chain_header} of {entry.url}",
                                   CertChain.of(read_chain(entry.chain)))
    return DcapCollateral(
        source=", ".join(e.url for e in entries),
        tcb_infos=((tcb.url, tcb.value),),
        qe_identities=((identity.url, identity.value),),
        signing_chains=tuple(chains.values()),
        pck_crls=(pck_crl.value,),
        root_crls=(root_crl.value,),
    )


class Providers:
    """What ``verify_evidence`` takes as ``collateral``: one provider per kind of evidence,
    None where the service is not configured for it (that evidence gets no collateral)."""

    def __init__(self, service: CollateralService, *, dcap: bool, snp: bool) -> None:
        self.service = service
        self.dcap = service.dcap if dcap else None
        self.snp = service.snp if snp else None


def default_cache_dir() -> Path:
    """The broker's cache when ``collateral_cache_dir`` is unset; the CLI's default too."""
    return workbench_home() / "kbs" / "collateral"


def open_service(cache_dir: str | Path | None = None, *, pcs_urls: tuple[str, ...] = (),
                 kds_urls: tuple[str, ...] = (),
                 refresh_ahead: timedelta = DEFAULT_REFRESH_AHEAD,
                 clock: Callable[[], datetime] = _utc_now) -> Providers:
    """The service over ``cache_dir`` (default: the broker's); a primed cache serves
    without any URL (air-gapped), so DCAP collateral is used whenever the cache or a PCS
    URL is there."""
    cache = CollateralCache(cache_dir or default_cache_dir())
    service = CollateralService(cache, Sources(pcs=pcs_urls, kds=kds_urls),
                                clock=clock, refresh_ahead=refresh_ahead)
    return Providers(service, dcap=True, snp=bool(kds_urls) or _has_kds(service.cache))


def _has_kds(cache: CollateralCache) -> bool:
    return any(e.request.service == "kds" for e in cache.entries())
