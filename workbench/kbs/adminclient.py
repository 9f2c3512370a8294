"""The admin CLI's HTTP client: one method per admin route, errors as one-line messages."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from workbench.errors import WorkbenchError
from workbench.kbs.listing import MORE_HEADER, TOTAL_HEADER
from workbench.protocol.errors import ErrorKind, error_type

ENV_URL = "WORKBENCH_KBS_URL"
DEFAULT_URL = "http://127.0.0.1:8080"
ADMIN = "/admin/v0"
# "No default given": lets None be a default like any other value.
_RAISE = object()


@dataclass(frozen=True)
class ApprovalListing:
    """A page of approval requests (newest first) and how many more are older."""

    items: list[dict[str, Any]]
    total: int
    more: int

    @property
    def next_before(self) -> str | None:
        return self.items[-1]["id"] if self.more and self.items else None


def segment(name: str) -> str:
    """``name`` as one path segment. Analyst names are plain now, but a database may hold
    older ones with ``/``, ``?``, ``#`` or a name of dots only, which httpx (and any proxy)
    would otherwise read as a path step; the broker's route takes them back decoded."""
    quoted = quote(name, safe="")
    return quoted.replace(".", "%2E") if set(name) == {"."} else quoted


def default_url() -> str:
    return os.environ.get(ENV_URL, DEFAULT_URL)


class AdminClient:
    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, *, missing: Any = _RAISE, **kwargs: Any) -> Any:
        """The route's JSON answer; ``missing`` is returned instead of raising when the
        broker says the resource does not exist."""
        return self._exchange(method, path, missing=missing, **kwargs)[0]

    def _exchange(self, method: str, path: str, *, missing: Any = _RAISE, **kwargs: Any
                  ) -> tuple[Any, httpx.Headers]:
        """The route's JSON answer and the response's headers."""
        try:
            response = self._http.request(method, ADMIN + path, **kwargs)
        except httpx.HTTPError as err:
            raise WorkbenchError(f"cannot reach the key broker at {self.url} ({err})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body, response.headers
        kind = body.get("type", "") if isinstance(body, dict) else ""
        if missing is not _RAISE and kind == error_type(ErrorKind.RESOURCE_NOT_FOUND):
            return missing, response.headers
        detail = body.get("detail") if isinstance(body, dict) else None
        raise WorkbenchError(f"key broker: {detail or f'HTTP {response.status_code}'}")

    @staticmethod
    def _b64(key: bytes) -> str:
        return base64.b64encode(key).decode()

    def add_resource(self, path: str, key: bytes, policy: dict[str, Any], *,
                     require_approval: bool, approval_timeout_s: int | None,
                     users: list[str] | None = None, groups: list[str] | None = None) -> Any:
        return self._call("POST", "/resources", json={
            "path": path, "key": self._b64(key), "policy": policy,
            "require_approval": require_approval, "approval_timeout_s": approval_timeout_s,
            "users": users, "groups": groups,
        })

    def list_resources(self) -> Any:
        return self._call("GET", "/resources")

    def show_resource(self, path: str) -> Any:
        return self._call("GET", f"/resources/{path}")

    def find_resource(self, path: str) -> Any:
        """The resource's description, or None when the broker has no such resource."""
        return self._call("GET", f"/resources/{path}", missing=None)

    def delete_resource(self, path: str) -> Any:
        """Delete a resource that was never released (the broker refuses otherwise)."""
        return self._call("DELETE", f"/resources/{path}")

    def rotate(self, path: str, key: bytes | None) -> Any:
        return self._call("POST", f"/resources/{path}/rotate",
                          json={"key": self._b64(key) if key is not None else None})

    def revoke(self, path: str) -> Any:
        return self._call("POST", f"/resources/{path}/revoke")

    def show_policy(self, path: str) -> Any:
        return self._call("GET", f"/resources/{path}/policy")

    def set_policy(self, path: str, policy: dict[str, Any], *, require_approval: bool | None,
                   approval_timeout_s: int | None, users: list[str] | None = None,
                   groups: list[str] | None = None) -> Any:
        """``users``/``groups``: None keeps the current restriction, [] lifts it."""
        return self._call("PUT", f"/resources/{path}/policy", json={
            "policy": policy, "require_approval": require_approval,
            "approval_timeout_s": approval_timeout_s, "users": users, "groups": groups,
        })

    def approvals(self, state: str = "pending", *, limit: int | None = None,
                  before: str | None = None) -> ApprovalListing:
        """One page of requests in ``state``, newest first, older than ``before``."""
        params: dict[str, Any] = {"state": state}
        if limit is not None:
            params["limit"] = limit
        if before is not None:
            params["before"] = before
        items, headers = self._exchange("GET", "/approvals", params=params)
        return ApprovalListing(items, int(headers.get(TOTAL_HEADER, len(items))),
                               int(headers.get(MORE_HEADER, 0)))

    def decide(self, request_id: str, *, approve: bool, reason: str) -> Any:
        verb = "approve" if approve else "deny"
        return self._call("POST", f"/approvals/{request_id}/{verb}", json={"reason": reason})

    def add_analyst(self, name: str, public_key: dict[str, Any],
                    groups: list[str] | None = None) -> Any:
        return self._call("POST", "/analysts", json={"name": name, "public_key": public_key,
                                                     "groups": groups})

    def analysts(self) -> Any:
        return self._call("GET", "/analysts")

    def revoke_analyst(self, name: str) -> Any:
        return self._call("POST", f"/analysts/{segment(name)}/revoke")

    def audit(self, *, after: int = 0, limit: int = 100, kind: str | None = None) -> Any:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if kind:
            params["kind"] = kind
        return self._call("GET", "/audit", params=params)

    def audit_checkpoint(self) -> Any:
        return self._call("GET", "/audit/checkpoint")
