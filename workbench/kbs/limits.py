"""Refuse oversized request bodies before any parsing (pure ASGI, so nothing buffers first).

A declared Content-Length over the limit is refused at once; a chunked body is read up to
the limit and refused as soon as it passes it. Accepted bodies are replayed to the app.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from workbench.kbs.errors import KbsError
from workbench.protocol.errors import ErrorKind

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, error: KbsError, headers: list[tuple[bytes, bytes]] = ()
                     ) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> KbsError:
        return KbsError(
            ErrorKind.BODY_TOO_LARGE,
            f"request body is larger than {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await send_error(send, KbsError(
                    ErrorKind.MALFORMED_REQUEST,
                                                "Content-Length is not a number"))
                return
            if too_large:
                await send_error(send, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class AdminGate:
    """No request under ``prefix`` reaches routing or body parsing without the admin token.

    The admin routes also declare the token as a dependency (that is what the OpenAPI
    description shows); this gate makes the order explicit: authentication comes first.
    """

    def __init__(self, app: ASGIApp, prefix: str, check: Callable[[str], KbsError | None]
                 ) -> None:
        self.app = app
        self.prefix = prefix
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, credentials = value.partition(" ")
            error = self.check(credentials.strip() if scheme.lower() == "bearer" else "")
            if error is not None:
                await send_error(send, error, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)
