"""Every way a broker request can fail, with its HTTP status, as one table.

The body is Trustee's ``ErrorInformation`` (``type`` + ``detail``, RFC 7807 style), with
``failed-rules`` on policy refusals and ``request-id`` where an approval is involved.
"""

from __future__ import annotations

from typing import Any

from workbench.kbs.protocol import ERROR_TYPE_PREFIX

# Problem type -> HTTP status.
ERROR_STATUS: dict[str, int] = {
    "MalformedRequest": 400,
    "ProtocolVersionMismatch": 400,
    "UnsupportedTee": 400,
    "InvalidTeePubkey": 400,
    "MalformedEvidence": 400,
    "InvalidResourcePath": 400,
    "InvalidPolicy": 400,
    "InvalidKey": 400,
    "MissingSession": 401,
    "UnknownSession": 401,
    "SessionExpired": 401,
    "NonceMismatch": 401,
    "NonceSpent": 401,
    "NotAttested": 401,
    "EvidenceRejected": 401,
    "BindingMismatch": 401,
    "AdminUnauthorized": 401,
    "IdentityRejected": 401,
    "PolicyDeny": 403,
    "ResourceRevoked": 403,
    "ApprovalDenied": 403,
    "ApprovalExpired": 403,
    "ResourceNotFound": 404,
    "ApprovalNotFound": 404,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "Conflict": 409,
    "BodyTooLarge": 413,
    "InternalError": 500,
    "IdentityUnavailable": 503,
}


class KbsError(Exception):
    """A refusal with a problem type from ``ERROR_STATUS`` and a one-line ``detail``."""

    def __init__(self, kind: str, detail: str, *, failed_rules: list[dict[str, Any]] | None
                 = None, request_id: str | None = None) -> None:
        if kind not in ERROR_STATUS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.failed_rules = failed_rules
        self.request_id = request_id

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.kind]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": ERROR_TYPE_PREFIX + self.kind, "detail": self.detail}
        if self.failed_rules is not None:
            body["failed-rules"] = self.failed_rules
        if self.request_id is not None:
            body["request-id"] = self.request_id
        return body
