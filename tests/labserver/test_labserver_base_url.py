"""Behind JupyterHub the server runs under a prefix: the routes live under base_url."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from workbench.labserver.routes import ROUTES

PREFIX = "/user/analyst/"


@pytest.fixture
def jp_base_url() -> str:
    return PREFIX


async def test_routes_are_joined_to_base_url(jp_fetch, http_server_client, jp_auth_header
                                             ) -> None:
    response = await jp_fetch("workbench", "config")
    assert json.loads(response.body)["key_source"].startswith("pinned ")
    for route in ROUTES:
        with pytest.raises(HTTPClientError) as caught:
            await http_server_client.fetch(f"/{route.path}", headers=jp_auth_header,
                                           method=route.methods[0],
                                           body="{}" if route.methods[0] == "POST" else None)
        assert caught.value.code == 404, route.path
