"""A browser's sign-in (``session_user``, one statement on the driver): the live session and its user, or
None for a session that expired, ended, or whose user was deactivated."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service
from app.auth.models import User, UserSession
from app.db import utcnow
from tests.factories import UserFactory


def _signed_in(db: Session, settings) -> tuple[User, str]:
    user = UserFactory()
    started = service.start_session(db, settings, user)
    db.commit()
    db.expunge_all()  # what a new request's session holds: nothing
    return user, started.raw_id


def test_a_live_session_gives_its_row_and_user_attached_to_the_session(db: Session, settings) -> None:
    user, raw = _signed_in(db, settings)
    found = service.session_user(db, raw)
    assert found is not None
    row, signed_in = found
    assert signed_in.id == user.id and signed_in.username == user.username
    assert row.user is signed_in and row.csrf_token and row.expires_at > utcnow()
    assert row in db and signed_in in db and not db.dirty


def test_an_expired_ended_or_deactivated_session_gives_none(db: Session, settings) -> None:
    user, raw = _signed_in(db, settings)
    row = db.scalar(select(UserSession).where(UserSession.user_id == user.id))
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert service.session_user(db, raw) is None
    row.expires_at = utcnow() + timedelta(hours=1)
    db.commit()
    assert service.session_user(db, raw) is not None
    db.get(User, user.id).is_active = False
    db.commit()
    assert service.session_user(db, raw) is None
    db.get(User, user.id).is_active = True
    service.logout(db, raw)
    assert service.session_user(db, raw) is None
    assert service.session_user(db, "never-issued") is None
