"""The server extension's routes through a real Jupyter server (pytest-jupyter's jp_fetch):
authentication on every route, verdicts over HTTP, broker keys pinned, published or absent."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path

import pytest
from jwcrypto.jwk import JWK
from labserver_reports import make_report
from tornado.httpclient import HTTPClientError

from workbench.attestation.tee.simulated import SimulatedProvider
from workbench.labserver.routes import ROUTES


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _verify(jp_fetch, body) -> dict:
    response = await jp_fetch("workbench", "verify", method="POST", body=json.dumps(body))
    assert response.code == 200
    return json.loads(response.body)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
@pytest.mark.parametrize("authorization", ["token not-the-token", ""])
async def test_every_route_refuses_unauthenticated_requests(jp_fetch, route, authorization
                                                            ) -> None:
    for method in route.methods:
        body = json.dumps({}) if method in ("POST", "PUT", "PATCH") else None
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch(*route.path.split("/"), method=method, body=body,
                           headers={"Authorization": authorization})
        assert caught.value.code == 403, f"{method} {route.path}"


def test_no_handler_lacks_an_authentication_decorator(jp_serverapp) -> None:
    # Jupyter Server warns about handlers without @authenticated when unauthenticated access
    # is not allowed (the extension template's check_auth); ours must raise none.
    from jupyter_server.serverapp import ServerApp
    from jupyter_server.utils import JupyterServerAuthWarning

    app = ServerApp(allow_unauthenticated_access=False,
                    jpserver_extensions={"workbench.labserver": True},
                    reraise_server_extension_failures=True)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        app.initialize(argv=[], find_extensions=False, new_httpserver=False)
    # Each warning lists "- METHOD of Handler registered for PATTERN" lines; other
    # extensions' lines (terminals) are theirs to fix.
    ours = [line for r in records if issubclass(r.category, JupyterServerAuthWarning)
            for line in str(r.message).splitlines()
            if any(route.handler.__name__ in line for route in ROUTES)]
    assert ours == []
    patterns = {rule.matcher.regex.pattern for group in app.web_app.default_router.rules
                for rule in getattr(group.target, "rules", [])}
    assert all(any(route.path in p for p in patterns) for route in ROUTES)


async def test_verify_answers_the_servers_verdict(jp_fetch, provider: SimulatedProvider,
                                                  broker_key: JWK) -> None:
    made = make_report(provider, broker_key)
    verdict = await _verify(jp_fetch, made.body)
    assert verdict["state"] == "simulated", verdict["reason"]
    assert verdict["evidence"]["claims"]["measurement"] == made.measurement
    assert verdict["broker"]["key_source"].startswith("pinned ")


async def test_verify_refuses_a_token_signed_by_another_key(jp_fetch, provider) -> None:
    made = make_report(provider, JWK.generate(kty="EC", crv="P-256"))
    verdict = await _verify(jp_fetch, made.body)
    assert verdict["state"] == "refused"
    assert "signature does not verify" in verdict["reason"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "request body is not JSON"),
    (json.dumps({"tee_pubkey": {}}).encode(), "token is missing"),
    (json.dumps({"token": "a.b.c", "tee_pubkey": {"kty": "EC"}, "evidence": "%%"}).encode(),
     "evidence is not valid base64"),
])
async def test_verify_rejects_malformed_bodies_with_the_reason(jp_fetch, body, reason) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("workbench", "verify", method="POST", body=body)
    assert caught.value.code == 400
    assert reason in json.loads(caught.value.response.body)["message"]


async def test_config_names_the_key_source(jp_fetch, broker_key_file: Path) -> None:
    response = await jp_fetch("workbench", "config")
    config = json.loads(response.body)
    assert config["key_source"] == f"pinned {broker_key_file}"


@pytest.mark.parametrize("lab_config", [
    {"broker_public_keys": [], "broker_url": f"http://127.0.0.1:{_closed_port()}",
     "fetch_timeout_seconds": 2.0},
])
async def test_unreachable_broker_is_unverified(jp_fetch, provider, broker_key) -> None:
    made = make_report(provider, broker_key)
    verdict = await _verify(jp_fetch, made.body)
    assert verdict["state"] == "unverified"
    assert verdict["reason"].startswith("cannot reach the key broker at http://127.0.0.1:")


@pytest.mark.parametrize("lab_config", [{"broker_public_keys": [], "broker_url": ""}])
async def test_no_broker_configured_is_unverified(jp_fetch, provider, broker_key) -> None:
    made = make_report(provider, broker_key)
    verdict = await _verify(jp_fetch, made.body)
    assert verdict["state"] == "unverified"
    assert "no broker key: set WorkbenchLab.broker_url" in verdict["reason"]
