"""Who may use which route: the one place permissions are decided.

Every route carries an ``allow(Access.X)`` dependency (usually through its router), and a test
walks ``app.routes`` to make sure none is missing. The dependency authenticates (session cookie
or Bearer token), checks CSRF on state-changing requests made with a cookie, then the role.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request, params
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy.orm import Session

from app.auth import cookies
from app.auth import service as auth_service
from app.auth.models import User, UserSession
from app.auth.secrets_util import same
from app.deps import DbDep, SettingsDep
from app.errors import Forbidden, Unauthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Access(enum.IntEnum):
    public = 0
    annotator = 1
    researcher = 2
    admin = 3


@dataclass(frozen=True)
class Principal:
    user: User
    session: UserSession | None  # None when authenticated by an API token

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""


class Allow:
    """The dependency behind ``allow``; its ``access`` attribute is what the route test reads."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def __call__(self, request: Request, db: DbDep, settings: SettingsDep) -> None:
        # Off the event loop: on SQLite a lookup may wait for another process's write lock.
        principal = await run_in_threadpool(_authenticate, request, db, settings)
        request.state.principal = principal
        if self.access is not Access.public and principal is None:
            raise Unauthenticated("log in, or send an API token as 'Authorization: Bearer …'")
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, principal, settings.ensure_secret_key())
        if principal is not None and principal.user.role.rank < self.access:
            raise Forbidden(f"this needs the {self.access.name} role; you are {principal.user.role.value}")


def allow(access: Access) -> params.Depends:
    return Depends(Allow(access))


def endpoints(app: FastAPI) -> Iterator[RouteContext]:
    """Every API route of the app as served (with the dependencies of the routers that include it)."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_access(route: RouteContext) -> Access | None:
    """The access level a route declares, or None when it declares none."""
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Allow):
            return dependency.call.access
    return None


def _lookup_principal(request: Request, db: Session, settings) -> Principal | None:  # noqa: ANN001
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        user = auth_service.token_user(db, auth[7:].strip())
        if user is None:
            raise Unauthenticated("the API token is unknown, revoked, or its user is deactivated")
        return Principal(user=user, session=None)
    raw = cookies.read_session_id(request, settings.ensure_secret_key(), int(settings.session_lifetime_hours * 3600))
    found = auth_service.session_user(db, raw) if raw else None
    return Principal(user=found[1], session=found[0]) if found else None


def _authenticate(request: Request, db: Session, settings) -> Principal | None:  # noqa: ANN001
    """Who is asking; the read transaction ends here so no lock is held while the request waits."""
    try:
        return _lookup_principal(request, db, settings)
    finally:
        if db.info.pop("auth_wrote", False) or db.get_bind().dialect.name == "sqlite":
            db.commit()  # keep the token's "last used"; on SQLite also release BEGIN IMMEDIATE's lock


async def _check_csrf(request: Request, principal: Principal | None, secret: str) -> None:
    if principal is not None and principal.session is None:
        return  # Bearer tokens are not sent by browsers on their own: no CSRF risk.
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and not request.url.path.startswith("/api/"):
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if principal is not None:
        expected = principal.csrf_token
    else:
        nonce = request.cookies.get(cookies.NONCE_COOKIE, "")
        expected = cookies.anonymous_csrf_token(secret, nonce) if nonce else secrets.token_hex(32)
    if not sent or not same(sent, expected):
        raise Forbidden("CSRF token missing or invalid; reload the page and try again")


async def current_principal(request: Request) -> Principal:  # async: no thread-pool hop
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("log in first")
    return principal


async def current_user(request: Request) -> User:
    return (await current_principal(request)).user


PrincipalDep = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[User, Depends(current_user)]
