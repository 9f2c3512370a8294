"""Every kind of refusal the broker answers with, and its HTTP status, as one table.

The body is Trustee's ``ErrorInformation`` (``type`` + ``detail``, RFC 7807 style), with
``failed-rules`` on policy refusals and ``request-id`` where an approval is involved. The
``type`` is ``ERROR_TYPE_PREFIX`` followed by the kind's name.
"""

from __future__ import annotations

from enum import StrEnum

ERROR_TYPE_PREFIX = "urn:workbench:kbs:error:"


class ErrorKind(StrEnum):
    MALFORMED_REQUEST = "MalformedRequest"
    PROTOCOL_VERSION_MISMATCH = "ProtocolVersionMismatch"
    UNSUPPORTED_TEE = "UnsupportedTee"
    INVALID_TEE_PUBKEY = "InvalidTeePubkey"
    MALFORMED_EVIDENCE = "MalformedEvidence"
    INVALID_RESOURCE_PATH = "InvalidResourcePath"
    INVALID_POLICY = "InvalidPolicy"
    INVALID_KEY = "InvalidKey"
    MISSING_SESSION = "MissingSession"
    UNKNOWN_SESSION = "UnknownSession"
    SESSION_EXPIRED = "SessionExpired"
    NONCE_MISMATCH = "NonceMismatch"
    NONCE_SPENT = "NonceSpent"
    NOT_ATTESTED = "NotAttested"
    EVIDENCE_REJECTED = "EvidenceRejected"
    BINDING_MISMATCH = "BindingMismatch"
    ADMIN_UNAUTHORIZED = "AdminUnauthorized"
    IDENTITY_REJECTED = "IdentityRejected"
    POLICY_DENY = "PolicyDeny"
    RESOURCE_REVOKED = "ResourceRevoked"
    APPROVAL_DENIED = "ApprovalDenied"
    APPROVAL_EXPIRED = "ApprovalExpired"
    RESOURCE_NOT_FOUND = "ResourceNotFound"
    APPROVAL_NOT_FOUND = "ApprovalNotFound"
    NOT_FOUND = "NotFound"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    CONFLICT = "Conflict"
    BODY_TOO_LARGE = "BodyTooLarge"
    INTERNAL_ERROR = "InternalError"
    IDENTITY_UNAVAILABLE = "IdentityUnavailable"


ERROR_STATUS: dict[ErrorKind, int] = {
    ErrorKind.MALFORMED_REQUEST: 400,
    ErrorKind.PROTOCOL_VERSION_MISMATCH: 400,
    ErrorKind.UNSUPPORTED_TEE: 400,
    ErrorKind.INVALID_TEE_PUBKEY: 400,
    ErrorKind.MALFORMED_EVIDENCE: 400,
    ErrorKind.INVALID_RESOURCE_PATH: 400,
    ErrorKind.INVALID_POLICY: 400,
    ErrorKind.INVALID_KEY: 400,
    ErrorKind.MISSING_SESSION: 401,
    ErrorKind.UNKNOWN_SESSION: 401,
    ErrorKind.SESSION_EXPIRED: 401,
    ErrorKind.NONCE_MISMATCH: 401,
    ErrorKind.NONCE_SPENT: 401,
    ErrorKind.NOT_ATTESTED: 401,
    ErrorKind.EVIDENCE_REJECTED: 401,
    ErrorKind.BINDING_MISMATCH: 401,
    ErrorKind.ADMIN_UNAUTHORIZED: 401,
    ErrorKind.IDENTITY_REJECTED: 401,
    ErrorKind.POLICY_DENY: 403,
    ErrorKind.RESOURCE_REVOKED: 403,
    ErrorKind.APPROVAL_DENIED: 403,
    ErrorKind.APPROVAL_EXPIRED: 403,
    ErrorKind.RESOURCE_NOT_FOUND: 404,
    ErrorKind.APPROVAL_NOT_FOUND: 404,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.CONFLICT: 409,
    ErrorKind.BODY_TOO_LARGE: 413,
    ErrorKind.INTERNAL_ERROR: 500,
    ErrorKind.IDENTITY_UNAVAILABLE: 503,
}

# Refusals after which a fresh session (new nonce, new evidence) may succeed.
RETRY_WITH_NEW_SESSION = frozenset({
    ErrorKind.SESSION_EXPIRED, ErrorKind.UNKNOWN_SESSION, ErrorKind.NOT_ATTESTED,
})


def error_type(kind: ErrorKind) -> str:
    """The ``type`` of an error body."""
    return ERROR_TYPE_PREFIX + kind.value


def kind_of(error_type_value: object) -> str:
    """The kind named by an error body's ``type`` (as sent: an unknown name is kept)."""
    return str(error_type_value or "").removeprefix(ERROR_TYPE_PREFIX)
