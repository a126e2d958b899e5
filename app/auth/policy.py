"""Who may use which route: the one place permissions are decided.

Every route carries an ``allow(Access.X)`` dependency (usually through its router), and a test
walks ``app.routes`` to make sure none is missing. The dependency authenticates (session cookie
or Bearer token), checks CSRF on state-changing requests made with a cookie, then the role.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from inspect import iscoroutinefunction, signature
from types import FunctionType
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, params
from fastapi import routing as fastapi_routing
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy.orm import Session

from app.auth import cookies
from app.auth import service as auth_service
from app.auth.models import User, UserSession
from app.auth.secrets_util import same
from app.deps import DbDep, SettingsDep, get_db, get_settings
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
        self._check_signed_in(request, principal)
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, principal, settings.ensure_secret_key())
        self._check_role(principal)

    def admit(self, request: Request, db: Session, settings) -> None:  # noqa: ANN001
        """What ``__call__`` does, in the calling thread (``OneHopRoute``), for an /api/ path: there a CSRF
        token comes only in its header, so no form has to be read."""
        principal = _authenticate(request, db, settings)
        self._check_signed_in(request, principal)
        if request.method not in SAFE_METHODS:
            _check_csrf_token(request, principal, settings.ensure_secret_key(), request.headers.get(CSRF_HEADER))
        self._check_role(principal)

    def _check_signed_in(self, request: Request, principal: Principal | None) -> None:
        request.state.principal = principal
        if self.access is not Access.public and principal is None:
            raise Unauthenticated("log in, or send an API token as 'Authorization: Bearer …'")

    def _check_role(self, principal: Principal | None) -> None:
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
    _check_csrf_token(request, principal, secret, sent)


def _check_csrf_token(request: Request, principal: Principal | None, secret: str, sent: str | None) -> None:
    if principal is not None and principal.session is None:
        return  # Bearer tokens are not sent by browsers on their own: no CSRF risk.
    if principal is not None:
        expected = principal.csrf_token
    else:
        nonce = request.cookies.get(cookies.NONCE_COOKIE, "")
        expected = cookies.anonymous_csrf_token(secret, nonce) if nonce else secrets.token_hex(32)
    if not sent or not same(sent, expected):
        raise Forbidden("CSRF token missing or invalid; reload the page and try again")


def _signed_in(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("log in first")
    return principal


async def current_principal(request: Request) -> Principal:  # async: no thread-pool hop
    return _signed_in(request)


async def current_user(request: Request) -> User:
    return _signed_in(request).user


PrincipalDep = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[User, Depends(current_user)]


# What OneHopRoute passes for each dependency a one-hop endpoint may declare, from the request and its session.
_PROVIDED: dict[Callable, Callable[[Request, Session], object]] = {
    get_db: lambda request, db: db,
    get_settings: lambda request, db: request.app.state.settings,
    current_principal: lambda request, db: _signed_in(request),
    current_user: lambda request, db: _signed_in(request).user,
}
_FALLBACK = object()  # the request goes to FastAPI's own handler, which answers it as it would have


@dataclass(frozen=True)
class _OneHop:
    """What a one-hop request needs of its route: its access rule, its dependencies and its JSON body."""

    gate: Allow
    provided: dict[str, Callable[[Request, Session], object]]  # parameter name → how it is made
    body: Any  # FastAPI's ModelField of the body parameter, or None
    endpoint: Callable[..., object]

    def run(self, request: Request, data: object) -> object:
        """In the thread pool: ``Allow``, then the body's validation (FastAPI's order), then the endpoint."""
        db: Session = request.app.state.sessionmaker()
        try:
            self.gate.admit(request, db, request.app.state.settings)
            values = {name: make(request, db) for name, make in self.provided.items()}
            if self.body is not None:
                values[self.body.name], errors = self.body.validate(data, {}, loc=("body",))
                if errors:
                    return _FALLBACK  # FastAPI's 422, in FastAPI's words
            response = self.endpoint(**values)
        finally:
            db.close()  # rolls back what the endpoint left uncommitted, as get_db does
        if not isinstance(response, Response):
            raise TypeError(f"a one-hop endpoint returns a Response, not {type(response).__name__}")
        return response


def _one_hop(route: APIRoute) -> _OneHop | None:
    """The route's one-hop plan, or None when it declares anything but an ``Allow``, the dependencies of
    ``_PROVIDED`` and one JSON body, or is not a plain ``def`` annotated to return a Response (then FastAPI
    handles it as usual)."""
    context = getattr(fastapi_routing, "_effective_route_context_var", None)  # the route as an app includes it
    effective = context.get() if context is not None else None
    source = effective if effective is not None and effective.original_route is route else route
    dependant, body = source.dependant, source.body_field
    declared = (dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params)
    if any(declared) or len(dependant.body_params) > 1 or not route.path.startswith("/api/"):
        return None
    if not isinstance(dependant.call, FunctionType) or iscoroutinefunction(dependant.call):
        return None
    returns = signature(dependant.call, eval_str=True).return_annotation
    if not (isinstance(returns, type) and issubclass(returns, Response)):
        return None  # only an endpoint that makes its Response itself: FastAPI would serialise anything else
    special = (dependant.request_param_name, dependant.response_param_name, dependant.background_tasks_param_name)
    if any(special) or dependant.security_scopes_param_name or dependant.http_connection_param_name:
        return None
    if body is not None and isinstance(body.field_info, params.Form):
        return None
    gates = [dep.call for dep in dependant.dependencies if isinstance(dep.call, Allow)]
    provided = {dep.name: _PROVIDED.get(dep.call) for dep in dependant.dependencies if dep.call not in gates}
    if len(gates) != 1 or None in provided or None in provided.values():
        return None
    return _OneHop(gate=gates[0], provided=provided, body=body, endpoint=dependant.call)


class OneHopRoute(APIRoute):
    """A plain ``def`` route whose request takes one trip to the thread pool instead of two: ``Allow``'s
    authentication, the body's validation and the endpoint run there together, on one session.

    FastAPI would run the authentication in one thread-pool call (it reads the database) and the endpoint in
    another, and solve the dependencies around them on the event loop: on the annotation path, those hops and
    that solving cost more CPU than the route's own statements. The order and the answers are FastAPI's: a
    body that does not parse is FastAPI's 422 before the access check, one that fails validation its 422
    after it. Whatever this does not answer exactly as FastAPI would (a body that is not ``application/json``,
    is empty or does not parse; validation errors; a route declaring more than ``_one_hop`` knows) goes to
    FastAPI's own handler, so only the common case takes the short road.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fallback = super().get_route_handler()
        plan = _one_hop(self)
        if plan is None:
            return fallback

        async def handle(request: Request) -> Response:
            data = None
            if plan.body is not None:
                if request.headers.get("content-type") != "application/json":
                    return await fallback(request)
                try:
                    raw = await request.body()  # kept on the request for the fallback
                    data = json.loads(raw)  # what Starlette's request.json() does
                except Exception:  # over the body limit, or not JSON: FastAPI answers each case its own way
                    return await fallback(request)
            response = await run_in_threadpool(plan.run, request, data)
            return await fallback(request) if response is _FALLBACK else response

        return handle
