"""Admin pages for users, and every user's own API tokens page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.auth import service as auth_service
from app.auth.models import Role
from app.auth.policy import Access, CurrentUser, allow
from app.deps import DbDep
from app.errors import DomainError
from app.users import service
from app.web import redirect, render

admin = APIRouter(prefix="/admin/users", tags=["admin pages"], dependencies=[allow(Access.admin)])
account = APIRouter(prefix="/account", tags=["account pages"], dependencies=[allow(Access.annotator)])

ShortText = Annotated[str, Form(max_length=1000)]


def _users_page(request: Request, db: DbDep, *, status_code: int = 200, **context: object) -> Response:
    return render(
        request, "users/list.html", {"users": service.list_users(db), "roles": list(Role), **context}, status_code=status_code
    )


@admin.get("", name="users_list")
def users_list(request: Request, db: DbDep) -> Response:
    return _users_page(request, db)


@admin.post("", name="users_create")
def users_create(request: Request, db: DbDep, username: ShortText = "", password: ShortText = "", role: ShortText = "annotator") -> Response:
    try:
        user = service.create_user(db, username=username, password=password, role=role)
    except DomainError as exc:
        form = {"username": username, "role": role}
        return _users_page(request, db, error=exc.message, error_field=exc.field, form=form, status_code=exc.status_code)
    return redirect(f"/admin/users/{user.id}?created=1")


@admin.get("/{user_id}", name="user_detail")
def user_detail(request: Request, db: DbDep, user_id: int, created: bool = False) -> Response:
    user = service.get_user(db, user_id)
    return render(request, "users/detail.html", {"subject": user, "roles": list(Role), "created": created})


def _detail_after(request: Request, db: DbDep, user_id: int, action) -> Response:  # noqa: ANN001
    """Run an admin action; on a domain error show the user's page with the message."""
    try:
        extra = action() or {}
    except DomainError as exc:
        subject = service.get_user(db, user_id)
        return render(request, "users/detail.html", {"subject": subject, "roles": list(Role), "error": exc.message}, status_code=exc.status_code)
    if extra:
        return render(request, "users/detail.html", {"subject": service.get_user(db, user_id), "roles": list(Role), **extra})
    return redirect(f"/admin/users/{user_id}")


@admin.post("/{user_id}/role", name="user_role")
def user_role(request: Request, db: DbDep, actor: CurrentUser, user_id: int, role: ShortText = "") -> Response:
    return _detail_after(request, db, user_id, lambda: service.change_role(db, actor=actor, user_id=user_id, role=role) and None)


@admin.post("/{user_id}/active", name="user_active")
def user_active(request: Request, db: DbDep, actor: CurrentUser, user_id: int, active: ShortText = "") -> Response:
    flag = active == "1"
    return _detail_after(request, db, user_id, lambda: service.set_active(db, actor=actor, user_id=user_id, active=flag) and None)


@admin.post("/{user_id}/password", name="user_password")
def user_password(request: Request, db: DbDep, actor: CurrentUser, user_id: int) -> Response:
    def action() -> dict[str, str]:
        _, password = service.reset_password(db, actor=actor, user_id=user_id)
        return {"new_password": password}

    return _detail_after(request, db, user_id, action)


@account.get("/tokens", name="tokens_page")
def tokens_page(request: Request, db: DbDep, user: CurrentUser) -> Response:
    return render(request, "account/tokens.html", {"tokens": auth_service.list_tokens(db, user=user)})


@account.post("/tokens", name="tokens_create")
def tokens_create(request: Request, db: DbDep, user: CurrentUser, name: ShortText = "") -> Response:
    try:
        _, raw = auth_service.create_token(db, user=user, name=name)
    except DomainError as exc:
        tokens = auth_service.list_tokens(db, user=user)
        return render(request, "account/tokens.html", {"tokens": tokens, "error": exc.message}, status_code=exc.status_code)
    return render(request, "account/tokens.html", {"tokens": auth_service.list_tokens(db, user=user), "new_token": raw})


@account.post("/tokens/{token_id}/revoke", name="tokens_revoke")
def tokens_revoke(request: Request, db: DbDep, user: CurrentUser, token_id: int) -> Response:
    auth_service.revoke_token(db, user=user, token_id=token_id)
    return redirect("/account/tokens")
