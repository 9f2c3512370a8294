"""The broker's HTTP face (FastAPI): the RCAR protocol routes and the admin API.

Routes are declared as tables. The protocol lives under ``/kbs/v0``; the admin API under
``/admin/v0``, every route of which depends on the admin bearer token (compared in constant
time), so a reverse proxy can also keep ``/admin`` off the public side. Errors of every
origin (validation, routing, refusals) leave as Trustee-style ``ErrorInformation`` JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench import __version__
from workbench.kbs import audit as audit_log
from workbench.kbs import checkpoint
from workbench.kbs.admin_token import token_matches
from workbench.kbs.approvals import APPROVED, DENIED, EXPIRED, PENDING
from workbench.kbs.errors import KbsError
from workbench.kbs.identity import IDENTITY_HEADER
from workbench.kbs.limits import AdminGate, BodyLimit
from workbench.kbs.listing import DEFAULT_PAGE, MAX_PAGE, MORE_HEADER, TOTAL_HEADER
from workbench.kbs.service import ANALYST_APPROVAL_MODES, APPROVAL_SOURCES, Broker, Pending
from workbench.protocol.errors import ErrorKind
from workbench.protocol.jwks import JWKS_PATH
from workbench.protocol.rcar import (
    ATTEST_PATH,
    AUTH_PATH,
    PROTOCOL_PREFIX,
    PROTOCOL_VERSION,
    RESOURCE_PATH,
    SESSION_COOKIE,
    AttestRequest,
    AttestResponse,
    AuthRequest,
    Challenge,
    ErrorInformation,
    Health,
    JweResponse,
    PendingApproval,
)

log = logging.getLogger("workbench.kbs")

ADMIN_PREFIX = "/admin/v0"
PURGE_INTERVAL_S = 60
MAX_APPROVAL_TIMEOUT_S = 7 * 24 * 3600
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorInformation} for status in (400, 401, 403, 404, 409, 413)
}


# -- admin request bodies ------------------------------------------------------------------

class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourceAdd(_Body):
    path: str = Field(description="repository/type/tag")
    key: str = Field(description="key material, base64")
    policy: dict[str, Any] = Field(description="appraisal policy (workbench policy schema)")
    require_approval: bool = False
    approval_timeout_s: int | None = Field(default=None, ge=1, le=MAX_APPROVAL_TIMEOUT_S)
    users: list[str] | None = Field(default=None, description="release only to these hub "
                                    "users (or members of groups); omitted: anyone")
    groups: list[str] | None = Field(default=None, description="release only to members of "
                                     "these hub groups (or named users); omitted: anyone")


class AnalystAdd(_Body):
    name: str = Field(description="the analyst's name, as policies list it")
    public_key: dict[str, Any] = Field(description="the analyst's public key (EC P-256 JWK)")
    groups: list[str] | None = Field(default=None, description="analyst groups policies may "
                                     "name (analyst_groups)")


class ResourceRotate(_Body):
    key: str | None = Field(default=None, description="new key material, base64; omitted: a "
                                                      "fresh random 32-byte key")


class PolicySet(_Body):
    policy: dict[str, Any]
    require_approval: bool | None = None
    approval_timeout_s: int | None = Field(default=None, ge=1, le=MAX_APPROVAL_TIMEOUT_S)
    users: list[str] | None = Field(default=None, description="replace the user restriction "
                                    "([] lifts it); omitted: unchanged")
    groups: list[str] | None = Field(default=None, description="replace the group restriction "
                                     "([] lifts it); omitted: unchanged")


class Decision(_Body):
    reason: str = Field(default="", max_length=500)


def _key_bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KbsError(ErrorKind.INVALID_KEY, "key must be base64") from None


# -- error rendering -----------------------------------------------------------------------

def _error_response(error: KbsError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.kind == "AdminUnauthorized" else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request body"
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    if first.get("type") == "missing":
        return f"{where}: required field is missing"
    return f"{where}: {first.get('msg')}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KbsError)
    async def _kbs_error(_request: Request, exc: KbsError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(KbsError(ErrorKind.MALFORMED_REQUEST, _validation_detail(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "NotFound", 405: "MethodNotAllowed"}
        kind = kinds.get(exc.status_code, "MalformedRequest")
        detail = f"no route {request.method} {request.url.path}" if exc.status_code == 404 \
            else f"{request.method} {request.url.path}: {exc.detail}"
        return _error_response(KbsError(kind, detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error handling %s %s", request.method, request.url.path)
        return _error_response(KbsError(
            ErrorKind.INTERNAL_ERROR,
            "internal error (see the broker log)"))


# -- routes as tables ----------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    method: str
    path: str
    endpoint: Callable[..., Any]
    summary: str
    status_code: int = 200
    response_model: Any = None
    responses: dict[int | str, dict[str, Any]] | None = None


def _set_session_cookie(response: Response, broker: Broker, session_id: str, ttl: int) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=ttl, path=PROTOCOL_PREFIX,
                        httponly=True, samesite="strict", secure=broker.config.cookie_secure)


def runner(broker: Broker) -> Callable[..., Awaitable[Any]]:
    """How handlers call the broker: inline on the event loop for a local SQLite store
    (short CPU-bound steps; no thread hand-offs), in the thread pool for a server database
    (network round trips must not stall the loop)."""
    if broker.store.is_sqlite:
        async def inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

        return inline
    return run_in_threadpool


_IDENTITY = Header(default=None, alias=IDENTITY_HEADER,
                   description="the analyst's JupyterHub token (identifies only); the broker "
                               "resolves it at its hub_api_url for user and group rules")


def protocol_routes(broker: Broker) -> list[Route]:
    call = runner(broker)

    async def auth(request: AuthRequest) -> Any:
        session_id, challenge, ttl = await call(broker.auth, request)
        response = JSONResponse(challenge.model_dump(by_alias=True))
        _set_session_cookie(response, broker, session_id, ttl)
        return response

    async def attest(request: AttestRequest,
                     session: str | None = Cookie(default=None, alias=SESSION_COOKIE),
                     identity: str | None = _IDENTITY) -> Any:
        presented = await broker.identities.resolve(identity)
        token, ttl = await call(broker.attest, session, request, presented)
        response = JSONResponse({"token": token})
        _set_session_cookie(response, broker, session or "", ttl)
        return response

    async def resource(repository: str, rtype: str, tag: str,
                 session: str | None = Cookie(default=None, alias=SESSION_COOKIE),
                 analyst_approval: str | None = Query(
                     default=None, alias="analyst-approval",
                     pattern=f"^({'|'.join(ANALYST_APPROVAL_MODES)})$",
                     description="how the analyst confirmed this release (recorded in the "
                                 "audit log; not a permission)"),
                 analyst_approval_by: str | None = Query(
                     default=None, alias="analyst-approval-by",
                     pattern=f"^({'|'.join(APPROVAL_SOURCES)}|[0-9a-f]{{64}})$",
                     description="what confirmed it: a fixed word for the unsealed modes "
                                 f"({', '.join(APPROVAL_SOURCES)}), the session "
                                 "fingerprint for a sealed approval; never free text"),
                 analyst_approval_signature: str | None = Query(
                     default=None, alias="analyst-approval-signature",
                     pattern=r"^[A-Za-z0-9_-]{86}$",
                     description="a certified session's ES256 signature (raw r||s, base64url) "
                                 "over the approval (docs/sealed-sessions.md)"),
                 analyst_approval_request: str | None = Query(
                     default=None, alias="analyst-approval-request", max_length=100,
                     pattern=r"^[A-Za-z0-9._-]+$",
                     description="the kernel's release request id the signature names"),
                 identity: str | None = _IDENTITY) -> Any:
        analyst = None
        if analyst_approval is not None:
            analyst = {"mode": analyst_approval, "by": analyst_approval_by or "",
                       "signature": analyst_approval_signature or "",
                       "request": analyst_approval_request or ""}
        presented = await broker.identities.resolve(identity)
        outcome = await call(broker.resource, session, f"{repository}/{rtype}/{tag}",
                             analyst=analyst, presented=presented)
        if isinstance(outcome, Pending):
            body = PendingApproval(request_id=outcome.request_id, resource=outcome.resource,
                                   deadline=outcome.deadline,
                                   retry_after_s=outcome.retry_after_s)
            return JSONResponse(body.model_dump(by_alias=True), status_code=202,
                                headers={"Retry-After": str(outcome.retry_after_s)})
        return JSONResponse(outcome.jwe)

    async def jwks() -> dict[str, Any]:
        return broker.key.jwks()

    async def health() -> Health:
        return Health(status="ok", version=__version__, protocol=PROTOCOL_VERSION)

    return [
        Route("POST", AUTH_PATH, auth, "Request: open a session, get a nonce",
              response_model=Challenge, responses=ERROR_RESPONSES),
        Route("POST", ATTEST_PATH, attest,
              "Attestation: present evidence binding the nonce and tee-pubkey",
              response_model=AttestResponse, responses=ERROR_RESPONSES),
        Route("GET", f"{RESOURCE_PATH}/{{repository}}/{{rtype}}/{{tag}}", resource,
              "Response: the resource as JWE to the tee-pubkey (202 while awaiting approval)",
              response_model=JweResponse,
              responses={**ERROR_RESPONSES, 202: {"model": PendingApproval}}),
        Route("GET", JWKS_PATH, jwks, "The broker's token-signing public keys"),
        Route("GET", "/healthz", health, "Liveness", response_model=Health),
    ]


def admin_routes(broker: Broker) -> list[Route]:
    registry, approvals = broker.registry, broker.approvals

    def path_of(repository: str, rtype: str, tag: str) -> str:
        return f"{repository}/{rtype}/{tag}"

    def list_resources() -> list[dict[str, Any]]:
        return [r.to_json() for r in registry.list()]

    def add_resource(body: ResourceAdd) -> dict[str, Any]:
        return registry.add(body.path, _key_bytes(body.key), body.policy,
                            require_approval=body.require_approval,
                            approval_timeout_s=body.approval_timeout_s, users=body.users,
                            groups=body.groups).to_json()

    def show_resource(repository: str, rtype: str, tag: str) -> dict[str, Any]:
        return registry.get(path_of(repository, rtype, tag)).to_json()

    def rotate(repository: str, rtype: str, tag: str, body: ResourceRotate) -> dict[str, Any]:
        key = _key_bytes(body.key) if body.key is not None else None
        return registry.rotate(path_of(repository, rtype, tag), key).to_json()

    def revoke(repository: str, rtype: str, tag: str) -> dict[str, Any]:
        return registry.revoke(path_of(repository, rtype, tag)).to_json()

    def delete_resource(repository: str, rtype: str, tag: str) -> dict[str, Any]:
        return registry.delete(path_of(repository, rtype, tag)).to_json()

    def show_policy(repository: str, rtype: str, tag: str) -> dict[str, Any]:
        info = registry.get(path_of(repository, rtype, tag))
        return {"path": info.path, "policy": json.loads(info.policy_text),
                "require_approval": info.require_approval,
                "approval_timeout_s": info.approval_timeout_s,
                "users": list(info.options.users) or None,
                "groups": list(info.options.groups) or None}

    def set_policy(repository: str, rtype: str, tag: str, body: PolicySet) -> dict[str, Any]:
        return registry.set_policy(path_of(repository, rtype, tag), body.policy,
                                   require_approval=body.require_approval,
                                   approval_timeout_s=body.approval_timeout_s,
                                   users=body.users, groups=body.groups).to_json()

    def list_approvals(response: Response,
                       state: str = Query(default=PENDING,
                                          pattern=f"^({PENDING}|{APPROVED}|{DENIED}|{EXPIRED}"
                                                  "|all)$"),
                       limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
                       before: str | None = Query(
                           default=None, max_length=40, pattern=r"^[A-Za-z0-9._-]+$",
                           description="list requests older than this request id (the "
                                       "last of the previous page)")) -> list[dict[str, Any]]:
        page = approvals.list(None if state == "all" else state, limit, before)
        response.headers[TOTAL_HEADER] = str(page.total)
        response.headers[MORE_HEADER] = str(page.more)
        if page.more:
            query = urlencode({"state": state, "limit": limit, "before": page.items[-1].id})
            response.headers["Link"] = f'<{ADMIN_PREFIX}/approvals?{query}>; rel="next"'
        return [a.to_json() for a in page.items]

    def show_approval(request_id: str) -> dict[str, Any]:
        return approvals.get(request_id).to_json()

    def approve(request_id: str, body: Decision) -> dict[str, Any]:
        return approvals.decide(request_id, approve=True, reason=body.reason).to_json()

    def deny(request_id: str, body: Decision) -> dict[str, Any]:
        return approvals.decide(request_id, approve=False, reason=body.reason).to_json()

    def list_analysts() -> list[dict[str, Any]]:
        return [a.to_json() for a in broker.analysts.list()]

    def add_analyst(body: AnalystAdd) -> dict[str, Any]:
        return broker.analysts.add(body.name, body.public_key, body.groups).to_json()

    def revoke_analyst(name: str) -> dict[str, Any]:
        return broker.analysts.revoke(name).to_json()

    def audit(after: int = Query(default=0, ge=0, le=2**62),
              limit: int = Query(default=100, ge=1, le=1000),
              kind: str | None = Query(default=None, max_length=32)) -> list[dict[str, Any]]:
        with broker.store.read() as conn:
            return [r.to_json() for r in audit_log.records(conn, after=after, limit=limit,
                                                           kind=kind)]

    def audit_verify() -> dict[str, Any]:
        # The broker's own keys (opened under the KEK at start), not the table's rows; it
        # cannot see what was cut and re-grown: that takes `audit verify --checkpoint`.
        with broker.store.read() as conn:
            verdict = audit_log.verify_chain(conn, broker.audit_keys)
        return {"ok": verdict.ok, "records": verdict.records, "head_seq": verdict.head_seq,
                "head_hash": verdict.head_hash, "bad_seq": verdict.bad_seq,
                "detail": verdict.describe()}

    def audit_checkpoint() -> dict[str, Any]:
        with broker.store.read() as conn:
            return checkpoint.of_head(conn, broker.key, broker.config.issuer_name,
                                      broker.now()).to_json()

    item = "/resources/{repository}/{rtype}/{tag}"
    return [
        Route("GET", "/resources", list_resources, "List resources (no key material)"),
        Route("POST", "/resources", add_resource, "Register a resource", status_code=201),
        Route("GET", item, show_resource, "Show one resource"),
        Route("DELETE", item, delete_resource,
              "Delete a resource never released (undo a failed publish); 409 once released"),
        Route("POST", f"{item}/rotate", rotate, "Replace the key material (new version)"),
        Route("POST", f"{item}/revoke", revoke, "Revoke: destroy the key, refuse releases"),
        Route("GET", f"{item}/policy", show_policy, "Show the policy and release options"),
        Route("PUT", f"{item}/policy", set_policy, "Replace the policy / release options"),
        Route("GET", "/approvals", list_approvals,
              "List approval requests, newest first (expiring those past their deadline)",
              responses={200: {"headers": {
                  TOTAL_HEADER: {"description": "requests in this state",
                                 "schema": {"type": "integer"}},
                  MORE_HEADER: {"description": "requests older than this page",
                                "schema": {"type": "integer"}},
                  "Link": {"description": 'the next page (rel="next"), when there is one',
                           "schema": {"type": "string"}}}}}),
        Route("GET", "/approvals/{request_id}", show_approval, "Show one approval request"),
        Route("POST", "/approvals/{request_id}/approve", approve, "Approve a pending release"),
        Route("POST", "/approvals/{request_id}/deny", deny, "Deny a pending release"),
        Route("GET", "/analysts", list_analysts, "List registered analysts"),
        Route("POST", "/analysts", add_analyst, "Register an analyst's public key",
              status_code=201),
        # :path, because a name stored before names were plain may hold a '/' (sent
        # percent-encoded, which the router sees decoded); such names must stay revocable.
        Route("POST", "/analysts/{name:path}/revoke", revoke_analyst,
              "Revoke an analyst: their sessions get nothing more"),
        Route("GET", "/audit", audit, "Audit records"),
        Route("GET", "/audit/verify", audit_verify, "Verify the audit chain and signatures"),
        Route("GET", "/audit/checkpoint", audit_checkpoint,
              "A signed checkpoint of the audit chain's head, to keep outside the broker"),
    ]


def _add(router: APIRouter | FastAPI, route: Route) -> None:
    router.add_api_route(route.path, route.endpoint, methods=[route.method],
                         summary=route.summary, status_code=route.status_code,
                         response_model=route.response_model, responses=route.responses)


def admin_check(expected_token: str) -> Callable[[str], KbsError | None]:
    def check(presented: str) -> KbsError | None:
        if not presented:
            return KbsError(
                ErrorKind.ADMIN_UNAUTHORIZED,
                            "admin API needs 'Authorization: Bearer <admin token>'")
        if not token_matches(presented, expected_token):
            log.warning("admin request with a wrong token refused")
            return KbsError(ErrorKind.ADMIN_UNAUTHORIZED, "admin token is not valid")
        return None

    return check


_bearer = HTTPBearer(auto_error=False, description="the admin token")


def admin_guard(check: Callable[[str], KbsError | None]) -> Callable[..., None]:
    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        error = check(credentials.credentials if credentials else "")
        if error is not None:
            raise error

    return require_admin


def create_app(broker: Broker, admin_token: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def purge() -> None:
            while True:
                await asyncio.sleep(PURGE_INTERVAL_S)
                try:
                    await asyncio.to_thread(broker.purge_expired)
                except Exception:  # keep purging later; the broker stays up
                    log.exception("purging expired sessions failed")

        task = asyncio.create_task(purge())
        if broker.witness is not None:
            broker.witness.start()
        try:
            yield
        finally:
            task.cancel()
            if broker.witness is not None:
                await asyncio.to_thread(broker.witness.stop)
            await broker.identities.aclose()

    app = FastAPI(title="Confidential Workbench key broker", version=__version__,
                  description="Trustee KBS attestation protocol (RCAR) 0.4.0 plus an admin "
                              "API; see docs/kbs.md for deviations.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    _install_error_handlers(app)
    for route in protocol_routes(broker):
        _add(app, route)
    check = admin_check(admin_token)
    admin = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"],
                      dependencies=[Depends(admin_guard(check))],
                      responses={401: {"model": ErrorInformation}})
    for route in admin_routes(broker):
        _add(admin, route)
    app.include_router(admin)
    app.add_middleware(BodyLimit, max_bytes=broker.config.max_body_bytes)
    app.add_middleware(AdminGate, prefix="/admin", check=check)
    return app
