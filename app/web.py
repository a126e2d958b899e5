"""Rendering pages: every template gets the viewer, their CSRF token and the navigation."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, overload

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app.auth import cookies
from app.auth.models import Role
from app.errors import DomainError

T = TypeVar("T")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def _form_fields(request: Request) -> dict[str, Any]:
    """The submitted form as a dict (parsed once: the CSRF check has read it already)."""
    return dict(await request.form())


# A form whose fields are not declared one by one (launch forms built from a schema, the export filters,
# the guidelines' per-label fields); sync handlers take it, so no database call runs on the event loop.
FormData = Annotated[dict[str, Any], Depends(_form_fields)]

# (label, path, least role) — the navigation shown by role.
NAVIGATION: list[tuple[str, str, Role]] = [
    ("Home", "/", Role.annotator),
    ("Annotate", "/annotate", Role.annotator),
    ("Chat", "/chat", Role.annotator),
    ("Users", "/admin/users", Role.admin),
    ("Prompts", "/admin/prompt-sets", Role.admin),
    ("Self-instruct", "/admin/self-instruct", Role.admin),
    ("Models", "/models", Role.researcher),
    ("Pool", "/pool", Role.researcher),
    ("Dashboard", "/dashboard", Role.researcher),
    ("Export", "/admin/export", Role.researcher),
    ("API tokens", "/account/tokens", Role.annotator),
]


def make_templates() -> Jinja2Templates:
    # autoescape is on for .html: model output and imported text are untrusted.
    return Jinja2Templates(directory=str(TEMPLATES_DIR))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    user = principal.user if principal else None
    nav = [(label, path) for label, path, role in NAVIGATION if user and user.role.rank >= role.rank]
    ctx = {"user": user, "nav": nav, "csrf_token": principal.csrf_token if principal else "", **(context or {})}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, ctx, status_code=status_code
    )
    response.headers["cache-control"] = "no-store"
    return response


def render_anonymous_form(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A form shown before login: its CSRF token is bound to a nonce cookie set here."""
    settings = request.app.state.settings
    nonce = request.cookies.get(cookies.NONCE_COOKIE) or secrets.token_urlsafe(24)
    token = cookies.anonymous_csrf_token(settings.ensure_secret_key(), nonce)
    response = render(request, template, {**(context or {}), "csrf_token": token}, status_code=status_code)
    cookies.set_nonce_cookie(response, request, nonce, settings.cookie_secure)
    return response


@overload
def form_action(db: Session, run: Callable[[], Response], *, failed: Callable[[DomainError], Response]) -> Response: ...


@overload
def form_action(
    db: Session, run: Callable[[], T], *, done: Callable[[T], Response], failed: Callable[[DomainError], Response]
) -> Response: ...


def form_action(
    db: Session,
    run: Callable[[], Any],
    *,
    done: Callable[[Any], Response] | None = None,
    failed: Callable[[DomainError], Response],
) -> Response:
    """Run a form's service call; a refusal rolls back and answers ``failed(error)``: the form again, with the message.

    It always rolls back, because a refusing service may have flushed rows or locked one (``lock_set``)
    first, and the page re-rendered from the same session must neither show half an action nor hold
    the lock while it renders; what the service committed before refusing stays. Only ``run`` is
    guarded, so a ``NotFound`` while rendering ``done`` or ``failed`` still reaches the error pages.
    Without ``done``, ``run`` built the answer itself.
    """
    try:
        result = run()
    except DomainError as exc:
        db.rollback()
        return failed(exc)
    return done(result) if done is not None else result


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def safe_next(value: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"
