"""User administration: create, change role, (de)activate, reset password, quarantine (audit-logged)."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import AuditEvent, Role, User
from app.auth.passwords import hash_password
from app.choices import parse_choice
from app.db import utcnow
from app.errors import Conflict, Invalid
from app.lookup import get_or_404
from app.text import storable_text

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


def validate_username(username: str) -> str:
    username = username.strip()
    if not username:
        raise Invalid("username", "must not be empty")
    if len(username) > 64:
        raise Invalid("username", "must be at most 64 characters")
    if not USERNAME_RE.match(username):
        raise Invalid("username", "may hold only letters, digits and . _ @ - and must start with a letter or digit")
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Invalid("password", f"must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Invalid("password", f"must be at most {MAX_PASSWORD} characters")
    return password


def parse_role(value: str | Role) -> Role:
    return parse_choice(Role, value, "role")


def create_user(db: Session, *, username: str, password: str, role: str | Role, commit: bool = True) -> User:
    username = validate_username(username)
    validate_password(password)
    role = parse_role(role)
    if db.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
        raise Conflict(f"username {username!r} is taken", field="username")
    user = User(username=username, password_hash=hash_password(password), role=role, is_active=True)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:  # a concurrent request created the same name between check and insert
        db.rollback()
        raise Conflict(f"username {username!r} is taken", field="username") from None
    if commit:
        db.commit()
    return user


def get_user(db: Session, user_id: int) -> User:
    return get_or_404(db, User, user_id, "user")


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def _active_admins(db: Session) -> int:
    return db.scalar(select(func.count()).where(User.role == Role.admin, User.is_active.is_(True))) or 0


def _guard_last_admin(db: Session, user: User) -> None:
    if user.role is Role.admin and user.is_active and _active_admins(db) <= 1:
        raise Conflict("this is the last active admin; make another admin first")


def update_user(
    db: Session,
    *,
    actor: User,
    user_id: int,
    role: str | Role | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    """Apply any of the changes in one transaction: a refused change leaves the others unwritten."""
    user = get_user(db, user_id)
    try:
        if role is not None:
            _apply_role(db, user, parse_role(role))
        if active is not None:
            _apply_active(db, actor, user, active)
        if password is not None:
            _apply_password(db, user, validate_password(password))
    except Exception:
        db.rollback()
        raise
    db.commit()
    return user


def change_role(db: Session, *, actor: User, user_id: int, role: str | Role) -> User:
    return update_user(db, actor=actor, user_id=user_id, role=role)


def set_active(db: Session, *, actor: User, user_id: int, active: bool) -> User:
    return update_user(db, actor=actor, user_id=user_id, active=active)


def reset_password(db: Session, *, actor: User, user_id: int, password: str | None = None) -> tuple[User, str]:
    """Sets the given or a random password, ends the user's sessions and revokes their tokens; returns it."""
    chosen = password or secrets.token_urlsafe(12)
    return update_user(db, actor=actor, user_id=user_id, password=chosen), chosen


MAX_REASON = 2_000


def set_quarantine(db: Session, *, actor: User, user_id: int, quarantined: bool, reason: str = "") -> User:
    """Quarantine an annotator (their work is left out of exports, training and agreement by default:
    ``auth.quarantine``) or lift it; each change is an ``AuditEvent`` naming who did it and why. Asking
    for the state the user is already in writes nothing."""
    user = get_user(db, user_id)
    reason = storable_text("reason", reason.strip())
    if len(reason) > MAX_REASON:
        raise Invalid("reason", f"must be at most {MAX_REASON:,} characters")
    if quarantined and user.id == actor.id:
        raise Conflict("you cannot quarantine yourself")
    if quarantined == (user.quarantined_at is not None):
        return user
    user.quarantined_at = utcnow() if quarantined else None
    action = "quarantine" if quarantined else "release"
    db.add(AuditEvent(actor_id=actor.id, user_id=user.id, action=action, reason=reason))
    db.commit()
    return user


def audit_log(db: Session, *, user_id: int | None = None, limit: int = 200) -> list[AuditEvent]:
    """The newest audit events first, of one user or of everyone."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    return list(db.scalars(query))


def _apply_role(db: Session, user: User, role: Role) -> None:
    if role is not user.role:
        _guard_last_admin(db, user)
        user.role = role


def _apply_active(db: Session, actor: User, user: User, active: bool) -> None:
    """Deactivation ends the user's sessions and revokes their tokens at once."""
    if not active and user.is_active:
        if user.id == actor.id:
            raise Conflict("you cannot deactivate yourself")
        _guard_last_admin(db, user)
        auth_service.end_all_sessions(db, user.id)
        auth_service.revoke_all_tokens(db, user.id)
    user.is_active = active


def _apply_password(db: Session, user: User, password: str) -> None:
    """A new password ends the user's sessions and revokes their API tokens, as deactivation does:
    whoever learnt the old password may have made a token with it."""
    user.password_hash = hash_password(password)
    auth_service.end_all_sessions(db, user.id)
    auth_service.revoke_all_tokens(db, user.id)


def ensure_first_admin(db: Session, *, password: str | None) -> str | None:
    """On an empty user table, create ``admin``; returns the password to print once, else None."""
    if db.scalar(select(func.count()).select_from(User)):
        return None
    chosen = password or secrets.token_urlsafe(12)
    create_user(db, username="admin", password=chosen, role=Role.admin)
    return chosen
