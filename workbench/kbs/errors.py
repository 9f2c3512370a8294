"""The broker's refusal: an error kind (``workbench.protocol.errors``) and a one-line detail.

The body is Trustee's ``ErrorInformation`` (``type`` + ``detail``, RFC 7807 style), with
``failed-rules`` on policy refusals and ``request-id`` where an approval is involved.
"""

from __future__ import annotations

from typing import Any

from workbench.protocol.errors import ERROR_STATUS, ErrorKind, error_type


class KbsError(Exception):
    """A refusal of one ``ErrorKind`` with a one-line ``detail``."""

    def __init__(self, kind: ErrorKind | str, detail: str, *,
                 failed_rules: list[dict[str, Any]] | None = None,
                 request_id: str | None = None) -> None:
        try:
            self.kind = ErrorKind(kind)
        except ValueError:
            raise ValueError(f"unknown error kind {kind!r}") from None
        super().__init__(detail)
        self.detail = detail
        self.failed_rules = failed_rules
        self.request_id = request_id

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.kind]

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": error_type(self.kind), "detail": self.detail}
        if self.failed_rules is not None:
            body["failed-rules"] = self.failed_rules
        if self.request_id is not None:
            body["request-id"] = self.request_id
        return body
