"""JSON API for accounts: who am I, users (admins), and one's own API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from app.auth import service as auth_service
from app.auth.models import Role
from app.auth.policy import Access, CurrentUser, allow
from app.bounds import Bool
from app.deps import DbDep
from app.users import service

me_router = APIRouter(prefix="/api/v1", tags=["account"], dependencies=[allow(Access.annotator)])
admin_router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=[allow(Access.admin)])


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(StrictBody):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=8, max_length=256)]
    role: Role = Role.annotator


class UserUpdate(StrictBody):
    role: Role | None = None
    is_active: Bool | None = None
    password: Annotated[str | None, Field(min_length=8, max_length=256)] = None


class TokenCreate(StrictBody):
    name: Annotated[str, Field(min_length=1, max_length=100)]


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret; shown this once and never again.")


@me_router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> object:
    """The signed-in account."""
    return user


@me_router.get("/tokens", response_model=list[TokenOut])
def tokens_list(db: DbDep, user: CurrentUser) -> object:
    """The caller's API tokens (never their secret)."""
    return auth_service.list_tokens(db, user=user)


@me_router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def tokens_create(body: TokenCreate, db: DbDep, user: CurrentUser) -> object:
    """A new API token for the caller; its secret is in this answer only, once."""
    token, raw = auth_service.create_token(db, user=user, name=body.name)
    return TokenCreated.model_validate({**TokenOut.model_validate(token).model_dump(), "token": raw})


@me_router.delete("/tokens/{token_id}", response_model=TokenOut)
def tokens_revoke(token_id: int, db: DbDep, user: CurrentUser) -> object:
    """Revoke one of the caller's API tokens; requests bearing it are refused from now on."""
    return auth_service.revoke_token(db, user=user, token_id=token_id)


@admin_router.get("", response_model=list[UserOut])
def users_list(db: DbDep) -> object:
    """Every account."""
    return service.list_users(db)


@admin_router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def users_create(body: UserCreate, db: DbDep) -> object:
    """Create an account with a role and a password."""
    return service.create_user(db, username=body.username, password=body.password, role=body.role)


@admin_router.get("/{user_id}", response_model=UserOut)
def users_get(user_id: int, db: DbDep) -> object:
    """One account."""
    return service.get_user(db, user_id)


@admin_router.patch("/{user_id}", response_model=UserOut)
def users_update(user_id: int, body: UserUpdate, db: DbDep, actor: CurrentUser) -> object:
    """Change an account's role, active flag or password (an admin cannot deactivate themselves)."""
    return service.update_user(
        db, actor=actor, user_id=user_id, role=body.role, active=body.is_active, password=body.password
    )
