"""Who is calling: session cookies, API tokens, CSRF and permission scopes for the HTTP API.

A request is authenticated by :func:`authenticate` (a FastAPI dependency) from either

- ``Authorization: Bearer veil_...`` (an API token, for scripts: no CSRF token needed, since a
  browser never adds that header by itself), or
- the session cookie set by ``POST /api/login`` (HttpOnly, SameSite=Strict, Secure under
  TLS). A cookie-authenticated request that changes something (any method but GET, HEAD and
  OPTIONS) must also carry the session's CSRF token in the ``X-CSRF-Token`` header.

Permissions are scopes, checked by the dependency :func:`requires` as starlette's
``@requires`` does::

    @router.put("/cameras/{camera_id}/masking")
    def put_masking(caller: Annotated[Caller, Depends(requires(Scope.CONFIGURE))]) -> ...

Not logged in (or an expired session or unknown token) gives 401; logged in without the
scope gives 403, and the refusal is written to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from veil.vault.users import AuthError, Principal, Scope, Session, require

if TYPE_CHECKING:
    from veil.server.gateway import Gateway

log = logging.getLogger(__name__)

SESSION_COOKIE = "veil_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiToken",
    description="An API token (veil_...) created with POST /api/tokens. No CSRF token needed.",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The session cookie set by POST /api/login.",
)
csrf_scheme = APIKeyHeader(
    name=CSRF_HEADER,
    auto_error=False,
    scheme_name="csrf",
    description="The session's CSRF token (from /api/login or /api/me), on every change.",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: who, and the browser session when it came with one."""

    principal: Principal
    session: Session | None = None
    token: str | None = None
    """The session cookie's value (for logout); None for API tokens."""


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    cookie: Annotated[str | None, Security(cookie_scheme)],
    csrf: Annotated[str | None, Security(csrf_scheme)],
) -> Caller:
    """The caller of ``request``; raises AuthError (401) or CsrfError (403)."""
    gateway = get_gateway(request)
    if bearer is not None:
        return Caller(gateway.tokens.resolve(bearer.credentials))
    if cookie:
        session = gateway.sessions.resolve(cookie)
        if request.method.upper() not in SAFE_METHODS:
            gateway.sessions.check_csrf(session, csrf)
        return Caller(session.principal, session, cookie)
    raise AuthError(
        "not logged in",
        hint="log in with POST /api/login, or send 'Authorization: Bearer veil_...'",
    )


def requires(*scopes: Scope) -> Callable[..., Caller]:
    """A dependency that authenticates and demands every scope in ``scopes`` (403, audited)."""

    def dependency(request: Request, caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        gateway = get_gateway(request)
        for scope in scopes:
            require(caller.principal, scope, audit=gateway.audit, target=request.url.path)
        return caller

    dependency.__name__ = "requires_" + "_".join(str(s) for s in scopes)
    return dependency


AnyUser = Annotated[Caller, Depends(authenticate)]
Viewer = Annotated[Caller, Depends(requires(Scope.VIEW))]
Operator = Annotated[Caller, Depends(requires(Scope.CONFIGURE))]
Investigator = Annotated[Caller, Depends(requires(Scope.UNMASK))]
Exporter = Annotated[Caller, Depends(requires(Scope.UNMASK, Scope.EXPORT))]
Admin = Annotated[Caller, Depends(requires(Scope.MANAGE_USERS))]
