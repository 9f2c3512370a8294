"""The HTTP routes the lab extension calls, declared as one table.

Every handler is authenticated (``tornado.web.authenticated``) and authorized against the
``workbench`` resource, so the routes need the same login as the rest of Jupyter Server (or
JupyterHub's token); ``WorkbenchLab`` joins each path to ``base_url``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from workbench import __version__
from workbench.verdict import BadReport, parse_kernel_id, parse_report

NAMESPACE = "workbench"
AUTH_RESOURCE = "workbench"
# The largest report the frontend forwards (evidence, certificates, token) as JSON.
MAX_BODY_BYTES = 2 * 1024 * 1024


class _Handler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def lab(self) -> Any:
        return self.extensionapp

    def _json_body(self) -> Any:
        if len(self.request.body) > MAX_BODY_BYTES:
            raise tornado.web.HTTPError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise tornado.web.HTTPError(400, f"request body is not JSON ({err})") from None


class VerifyHandler(_Handler):
    """POST a kernel's report (what it sent over the comm); answer the server's verdict."""

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self._json_body()
        try:
            report = parse_report(body)
            kernel_id = parse_kernel_id(body)
        except BadReport as err:
            raise tornado.web.HTTPError(400, str(err)) from None
        verdict = await self.lab.judge(report, kernel_id=kernel_id)
        self.finish(json.dumps(verdict.to_json()))


class ConfigHandler(_Handler):
    """GET what this server trusts: the broker URL and where its keys come from."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(json.dumps({
            "version": __version__,
            "broker_url": self.lab.broker_url,
            "key_source": self.lab.broker_keys.source,
        }))


@dataclass(frozen=True)
class Route:
    path: str
    handler: type[_Handler]
    methods: tuple[str, ...]
    summary: str


ROUTES: tuple[Route, ...] = (
    Route(f"{NAMESPACE}/verify", VerifyHandler, ("POST",),
          "re-verify a kernel's token and evidence; answer the verdict"),
    Route(f"{NAMESPACE}/config", ConfigHandler, ("GET",),
          "the broker URL and the source of its keys"),
)
