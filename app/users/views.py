"""Admin pages for users, and every user's own API tokens page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth import service as auth_service
from app.auth.models import Role, User
from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep
from app.users import service
from app.web import form_action, redirect, render

admin = APIRouter(prefix="/admin/users", tags=["admin pages"], dependencies=[allow(Access.admin)])
account = APIRouter(prefix="/account", tags=["account pages"], dependencies=[allow(Access.annotator)])

ShortText = Annotated[str, Form(max_length=1000)]


def _users_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    return render(
        request,
        "users/list.html",
        {"users": service.list_users(db), "roles": list(Role), **context},
        status_code=status_code,
    )


@admin.get("", name="users_list")
def users_list(request: Request, db: DbDep) -> Response:
    return _users_page(request, db)


@admin.post("", name="users_create")
def users_create(
    request: Request, db: DbDep, username: ShortText = "", password: ShortText = "", role: ShortText = "annotator"
) -> Response:
    form = {"username": username, "role": role}
    return form_action(
        db,
        lambda: service.create_user(db, username=username, password=password, role=role),
        done=lambda user: redirect(f"/admin/users/{user.id}?created=1"),
        failed=lambda exc: _users_page(
            request, db, error=exc.message, error_field=exc.field, form=form, status_code=exc.status_code
        ),
    )


@admin.get("/{user_id}", name="user_detail")
def user_detail(request: Request, db: DbDep, user_id: int, created: bool = False) -> Response:
    return _detail_page(request, db, user_id, created=created)


def _detail_page(request: Request, db: DbDep, user_id: int, *, status_code: int = 200, **context: object) -> Response:
    ctx = {
        "subject": service.get_user(db, user_id),
        "roles": list(Role),
        "audit": service.audit_log(db, user_id=user_id),
        **context,
    }
    return render(request, "users/detail.html", ctx, status_code=status_code)


def _detail_after(request: Request, db: DbDep, user_id: int, action: Callable[[], dict[str, str] | None]) -> Response:
    """Run an admin action; what it returns is shown once on the user's page, else back to that page."""

    def done(shown: dict[str, str] | None) -> Response:
        return _detail_page(request, db, user_id, **shown) if shown else redirect(f"/admin/users/{user_id}")

    return form_action(
        db,
        action,
        done=done,
        failed=lambda exc: _detail_page(request, db, user_id, error=exc.message, status_code=exc.status_code),
    )


@admin.post("/{user_id}/role", name="user_role")
def user_role(request: Request, db: DbDep, actor: CurrentUser, user_id: int, role: ShortText = "") -> Response:
    return _detail_after(
        request, db, user_id, lambda: service.change_role(db, actor=actor, user_id=user_id, role=role) and None
    )


@admin.post("/{user_id}/active", name="user_active")
def user_active(request: Request, db: DbDep, actor: CurrentUser, user_id: int, active: ShortText = "") -> Response:
    flag = active == "1"
    return _detail_after(
        request, db, user_id, lambda: service.set_active(db, actor=actor, user_id=user_id, active=flag) and None
    )


@admin.post("/{user_id}/quarantine", name="user_quarantine")
def user_quarantine(
    request: Request,
    db: DbDep,
    actor: CurrentUser,
    user_id: int,
    quarantined: ShortText = "",
    reason: Annotated[str, Form(max_length=service.MAX_REASON)] = "",
) -> Response:
    flag = quarantined == "1"

    def action() -> None:
        service.set_quarantine(db, actor=actor, user_id=user_id, quarantined=flag, reason=reason)

    return _detail_after(request, db, user_id, action)


@admin.post("/{user_id}/password", name="user_password")
def user_password(request: Request, db: DbDep, actor: CurrentUser, user_id: int) -> Response:
    def action() -> dict[str, str]:
        _, password = service.reset_password(db, actor=actor, user_id=user_id)
        return {"new_password": password}

    return _detail_after(request, db, user_id, action)


def _tokens_page(request: Request, db: DbDep, user: User, *, status_code: int = 200, **context: object) -> Response:
    ctx = {"tokens": auth_service.list_tokens(db, user=user), **context}
    return render(request, "account/tokens.html", ctx, status_code=status_code)


@account.get("/tokens", name="tokens_page")
def tokens_page(request: Request, db: DbDep, user: CurrentUser) -> Response:
    return _tokens_page(request, db, user)


@account.post("/tokens", name="tokens_create")
def tokens_create(request: Request, db: DbDep, user: CurrentUser, name: ShortText = "") -> Response:
    return form_action(
        db,
        lambda: auth_service.create_token(db, user=user, name=name)[1],
        done=lambda raw: _tokens_page(request, db, user, new_token=raw),
        failed=lambda exc: _tokens_page(request, db, user, error=exc.message, status_code=exc.status_code),
    )


@account.post("/tokens/{token_id}/revoke", name="tokens_revoke")
def tokens_revoke(request: Request, db: DbDep, user: CurrentUser, token_id: int) -> Response:
    auth_service.revoke_token(db, user=user, token_id=token_id)
    return redirect("/account/tokens")
