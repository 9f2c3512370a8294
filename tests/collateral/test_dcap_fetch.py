"""The collateral service on a DCAP quote: fetched from a PCS v4 stand-in, cached, refreshed,
refused when it cannot be had. The stand-in serves go-tdx-guest's recorded PCS answers
(with Intel's issuer-chain headers) for trustee's TDX v4 quote; times are fixed inside
their validity (INSIDE) or after it."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from collateral_server import FMSPC, CollateralServer, pcs_routes
from collateral_service import INSIDE, make_service

from workbench.attestation.verify import dcap
from workbench.attestation.verify.result import EvidenceRejected

TCB_PATH = f"/tdx/certification/v4/tcb?fmspc={FMSPC}"
QE_PATH = "/tdx/certification/v4/qe/identity"
AFTER_QE_IDENTITY = datetime(2023, 7, 9, tzinfo=UTC)  # its nextUpdate is 2023-07-08


def _verify(quote, service, now=INSIDE):
    return dcap.verify_quote(quote, now=now, collateral=service.dcap)


def _refused(quote, service, now=INSIDE) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as info:
        _verify(quote, service, now)
    return info.value


def _refused_by(routes, quote, folder) -> tuple[EvidenceRejected, str]:
    """The refusal of ``quote`` with collateral from a stand-in serving ``routes``, and its
    URL."""
    server = CollateralServer(routes)
    try:
        return _refused(quote, make_service(folder, server)), server.url
    finally:
        server.stop()


def test_first_fetch_verifies_with_every_item_from_the_service(pcs, tdx_quote, tmp_path):
    result = _verify(tdx_quote, make_service(tmp_path, pcs))
    assert result.tcb_status == "UpToDate"
    assert dict(pcs.counts) == {path: 1 for path in pcs_routes()}
    checks = {c.name: c.detail for c in result.checks}
    assert f"{pcs.url}{TCB_PATH}" in checks["collateral"]
    assert checks["tcb-info"].startswith(f"{pcs.url}{TCB_PATH}:")
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_cache_hit_sends_no_request(pcs, tdx_quote, tmp_path):
    _verify(tdx_quote, make_service(tmp_path, pcs))
    sent = pcs.total
    _verify(tdx_quote, make_service(tmp_path, pcs))  # a new service: read from disk
    _verify(tdx_quote, make_service(tmp_path, pcs))
    assert pcs.total == sent == 4


def test_refresh_renews_only_entries_near_their_next_update(pcs, tdx_quote, tmp_path):
    service = make_service(tmp_path, pcs, refresh_ahead=timedelta(days=20))
    _verify(tdx_quote, service)
    # At 2023-06-20 with 20 days ahead: the QE identity (nextUpdate 07-08) is due, the TCB
    # info (07-18) is not.
    assert service.refresh_due(INSIDE) == []
    assert pcs.counts[QE_PATH] == 2
    assert pcs.counts[TCB_PATH] == 1
    _verify(tdx_quote, service)
    assert pcs.counts[QE_PATH] == 2


def test_expired_collateral_is_refused_naming_the_url(pcs, tdx_quote, tmp_path):
    err = _refused(tdx_quote, make_service(tmp_path, pcs, now=AFTER_QE_IDENTITY),
                   AFTER_QE_IDENTITY)
    assert err.check == "collateral"
    assert (f"QE identity from {pcs.url}{QE_PATH} expired: its nextUpdate is "
            "2023-07-08T07:24:59+00:00") in err.reason


def test_collateral_kept_in_memory_is_not_served_past_its_next_update(pcs, tdx_quote,
                                                                     tmp_path):
    # The service keeps a platform's assembled collateral in memory for a second; a call
    # in that second at a time past the QE identity's nextUpdate must not be served from it.
    service = make_service(tmp_path, pcs)
    _verify(tdx_quote, service)
    err = _refused(tdx_quote, service, AFTER_QE_IDENTITY)
    assert err.check == "collateral"
    assert f"QE identity from {pcs.url}{QE_PATH} expired" in err.reason
    assert pcs.counts[QE_PATH] == 2  # looked for a fresh one instead of using the memory


def test_expired_entry_is_fetched_again_not_served(pcs, tdx_quote, tmp_path):
    _verify(tdx_quote, make_service(tmp_path, pcs))
    err = _refused(tdx_quote, make_service(tmp_path, pcs), AFTER_QE_IDENTITY)
    assert err.check == "collateral" and "QE identity" in err.reason
    assert pcs.counts[QE_PATH] == 2  # asked again, since the cached one had expired


def test_bad_signature_on_fetched_tcb_info_is_refused(vectors, tdx_quote, tmp_path):
    routes = pcs_routes()
    body, headers = routes[TCB_PATH]
    edited = body.replace(b'"tcbEvaluationDataNumber":15', b'"tcbEvaluationDataNumber":16')
    assert edited != body
    routes[TCB_PATH] = (edited, headers)
    err, url = _refused_by(routes, tdx_quote, tmp_path)
    assert err.check == "tcb-info-signature"
    assert err.reason.startswith(f"TCB info {url}{TCB_PATH}: signature does not verify")


def test_answer_that_is_not_collateral_is_refused(vectors, tdx_quote, tmp_path):
    routes = pcs_routes()
    routes[TCB_PATH] = (b"<html>proxy login</html>", routes[TCB_PATH][1])
    err, url = _refused_by(routes, tdx_quote, tmp_path)
    assert err.check == "collateral"
    assert f"{url}{TCB_PATH}: not TCB info" in err.reason
    assert list(tmp_path.glob("*.json")) == []  # nothing unreadable is cached


def test_missing_issuer_chain_header_is_refused(vectors, tdx_quote, tmp_path):
    routes = pcs_routes()
    routes[TCB_PATH] = (routes[TCB_PATH][0], {"Content-Type": "application/json"})
    err, url = _refused_by(routes, tdx_quote, tmp_path)
    assert "answer lacks the TCB-Info-Issuer-Chain header" in err.reason
    assert f"{url}{TCB_PATH}" in err.reason


def test_server_down_with_valid_cache_serves_and_warns(pcs, tdx_quote, tmp_path, caplog):
    service = make_service(tmp_path, pcs, refresh_ahead=timedelta(days=40))
    _verify(tdx_quote, service)
    pcs.stop()
    with caplog.at_level(logging.WARNING, logger="workbench.collateral"):
        warnings = service.refresh_due(INSIDE)
    # Due within 40 days: TCB info, QE identity, PCK CRL (the root CRL runs to 2024-04).
    assert len(warnings) == 3
    assert all("still served until" in w and "unreachable" in w for w in warnings)
    assert any("still served until" in r.getMessage() for r in caplog.records)
    assert _verify(tdx_quote, service).tcb_status == "UpToDate"


def test_server_down_with_expired_cache_is_refused_naming_the_url(pcs, tdx_quote, tmp_path):
    _verify(tdx_quote, make_service(tmp_path, pcs))
    url = pcs.url
    pcs.stop()
    err = _refused(tdx_quote, make_service(tmp_path, pcs, now=AFTER_QE_IDENTITY),
                   AFTER_QE_IDENTITY)
    assert err.check == "collateral"
    assert err.reason.startswith(
        f"QE identity from {url}{QE_PATH} expired at 2023-07-08T07:24:59+00:00")
    assert f"fetching it again failed: {url}{QE_PATH}: unreachable" in err.reason


def test_nothing_cached_and_server_down_is_refused(pcs, tdx_quote, tmp_path):
    url = pcs.url
    pcs.stop()
    err = _refused(tdx_quote, make_service(tmp_path, pcs))
    assert err.reason.startswith(f"cannot fetch TCB info {TCB_PATH}: {url}{TCB_PATH}: "
                                 "unreachable")


def test_sources_are_tried_in_order(pcs, tdx_quote, tmp_path):
    down = "http://127.0.0.1:9"  # discard port: nothing listens
    result = _verify(tdx_quote, make_service(tmp_path, urls=(down, pcs.url)))
    assert result.tcb_status == "UpToDate"
    assert pcs.total == 4


def test_concurrent_first_requests_make_one_fetch(vectors, tdx_quote, tmp_path):
    server = CollateralServer(pcs_routes(), delay_s=0.2)
    service = make_service(tmp_path, server)
    results, errors = [], []

    def run() -> None:
        try:
            results.append(_verify(tdx_quote, service).tcb_status)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        server.stop()
    assert errors == []
    assert results == ["UpToDate"] * 8
    assert dict(server.counts) == {path: 1 for path in pcs_routes()}


def test_tcb_info_of_another_platform_is_refused_naming_the_url(vectors, tdx_quote,
                                                                tmp_path):
    routes = pcs_routes()
    other = (vectors / "sgx" / "collateral" / "tcbInfo.json").read_bytes()  # FMSPC 00a06d080000
    routes[TCB_PATH] = (other, routes[TCB_PATH][1])
    err, url = _refused_by(routes, tdx_quote, tmp_path)
    assert err.check == "tcb-info"
    assert f"{url}{TCB_PATH}:" in err.reason
    assert "FMSPC" in err.reason


def test_answer_of_the_wrong_kind_is_refused(vectors, tdx_quote, tmp_path):
    routes = pcs_routes()
    routes[QE_PATH] = (routes[TCB_PATH][0], routes[QE_PATH][1])  # TCB info where QE identity
    err, url = _refused_by(routes, tdx_quote, tmp_path)
    assert err.check == "collateral"
    assert err.reason.startswith(f"{url}{QE_PATH}: not QE identity")
