"""Logins, sessions and API tokens: who is asking, and are they still allowed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from app.auth import throttle
from app.auth.models import ApiToken, User, UserSession
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.secrets_util import new_token, token_hash
from app.config import Settings
from app.db import utcnow
from app.driver_statement import DriverStatement, as_loaded, columns_of
from app.errors import DomainError, Invalid
from app.lookup import get_or_404
from app.text import storable, storable_text

LOGIN_FAILED = "Unknown username or wrong password."
API_TOKEN_PREFIX = "rlhf_"


class LoginFailed(DomainError, status_code=400, title="Login failed"):
    """One answer for an unknown user, a wrong password and a deactivated account."""


@dataclass(frozen=True)
class NewSession:
    raw_id: str  # goes into the signed cookie, never stored
    row: UserSession


def login(db: Session, settings: Settings, *, username: str, password: str, ip: str) -> NewSession:
    """Check credentials (throttled), then start a fresh session; commits either way so that a
    failure is counted even though the caller answers with an error."""
    username = storable(username)  # a NUL would break the queries; no account's name holds one
    throttle.check_allowed(db, settings, username=username, ip=ip)
    user = db.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        throttle.record_failure(db, username=username, ip=ip)
        db.commit()
        raise LoginFailed(LOGIN_FAILED)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session = start_session(db, settings, user)
    throttle.forget_old(db, settings)
    db.commit()
    return session


def start_session(db: Session, settings: Settings, user: User) -> NewSession:
    raw = new_token()
    row = UserSession(
        id=token_hash(raw),
        user_id=user.id,
        csrf_token=new_token(),
        expires_at=utcnow() + timedelta(hours=settings.session_lifetime_hours),
    )
    db.add(row)
    return NewSession(raw_id=raw, row=row)


# A browser's sign-in on every request, in one statement on the driver (see _TOKEN_USER below).
_SESSION_USER = DriverStatement(
    select(*columns_of(UserSession, "session_"), *columns_of(User, "user_"))
    .join(User, User.id == UserSession.user_id)
    .where(
        UserSession.id == bindparam("session_id"),
        UserSession.expires_at > bindparam("now", type_=UserSession.__table__.c.expires_at.type),
        User.is_active.is_(True),
    )
)


def session_user(db: Session, raw_id: str) -> tuple[UserSession, User] | None:
    """The live session and its user, or None when expired, ended or the user is deactivated."""
    row = _SESSION_USER.first(db.connection(), {"session_id": token_hash(raw_id), "now": utcnow()})
    if row is None:
        return None
    return as_loaded(db, UserSession, row, "session_"), as_loaded(db, User, row, "user_")


def logout(db: Session, raw_id: str) -> None:
    db.execute(delete(UserSession).where(UserSession.id == token_hash(raw_id)))
    db.commit()


def end_all_sessions(db: Session, user_id: int) -> None:
    db.execute(delete(UserSession).where(UserSession.user_id == user_id))


TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)


# Built once and run on the driver: this runs on every API request, and building a select costs more than
# running it, and loading the User through the ORM twice what the statement costs (app.driver_statement).
_TOKEN_USER = DriverStatement(
    select(*columns_of(User), ApiToken.id.label("token_id"), ApiToken.last_used_at.label("token_last_used_at"))
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None), User.is_active.is_(True))
)


def token_user(db: Session, raw_token: str) -> User | None:
    """The active user behind an API token, in one query."""
    row = _TOKEN_USER.first(db.connection(), {"token_hash": token_hash(raw_token)})
    if row is None:
        return None
    now, last_used = utcnow(), row.token_last_used_at
    if last_used is None or now - last_used > TOKEN_TOUCH_INTERVAL:  # "last used" without a write per request
        db.execute(update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=now))
        db.info["auth_wrote"] = True
    return as_loaded(db, User, row)


def create_token(db: Session, *, user: User, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the plaintext token, which is shown once and never stored."""
    name = name.strip()
    if not name:
        raise Invalid("name", "must not be empty")
    storable_text("name", name)
    if len(name) > 100:
        raise Invalid("name", "must be at most 100 characters")
    raw = new_token(API_TOKEN_PREFIX)
    token = ApiToken(user_id=user.id, name=name, token_hash=token_hash(raw), prefix=raw[: len(API_TOKEN_PREFIX) + 6])
    db.add(token)
    db.commit()
    return token, raw


def list_tokens(db: Session, *, user: User) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def revoke_token(db: Session, *, user: User, token_id: int) -> ApiToken:
    token = get_or_404(db, ApiToken, token_id, "token", where=lambda t: t.user_id == user.id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    db.commit()
    return token


def revoke_all_tokens(db: Session, user_id: int) -> None:
    db.execute(
        update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
