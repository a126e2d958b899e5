"""Login and logout pages (here, not in ``auth``: pages render through ``app.web``, which builds on ``auth``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth import cookies
from app.auth import service as auth_service
from app.auth.policy import Access, allow
from app.deps import DbDep, SettingsDep
from app.errors import TooManyRequests
from app.web import redirect, render_anonymous_form, safe_next

router = APIRouter(tags=["auth pages"])


@router.get("/login", name="login_form", dependencies=[allow(Access.public)])
def login_form(request: Request, next: str = "/") -> Response:
    if getattr(request.state, "principal", None):
        return redirect(safe_next(next))
    return render_anonymous_form(request, "auth/login.html", {"next": safe_next(next)})


@router.post("/login", name="login", dependencies=[allow(Access.public)])
def login(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    ip = request.client.host if request.client else "unknown"
    try:
        new = auth_service.login(db, settings, username=username.strip(), password=password, ip=ip)
    except (auth_service.LoginFailed, TooManyRequests) as exc:
        page = render_anonymous_form(
            request,
            "auth/login.html",
            {"error": exc.message, "username": username, "next": safe_next(next)},
            status_code=exc.status_code,
        )
        if isinstance(exc, TooManyRequests):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = redirect(safe_next(next))
    max_age = int(settings.session_lifetime_hours * 3600)
    cookies.set_session_cookie(
        response,
        request,
        secret=settings.ensure_secret_key(),
        raw_id=new.raw_id,
        max_age_s=max_age,
        secure=settings.cookie_secure,
    )
    return response


@router.post("/logout", name="logout", dependencies=[allow(Access.annotator)])
def logout(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    raw = cookies.read_session_id(request, settings.ensure_secret_key(), int(settings.session_lifetime_hours * 3600))
    if raw:
        auth_service.logout(db, raw)
    response = redirect("/login")
    cookies.clear_session_cookie(response)
    return response
