"""Login throttling: too many failures for one account or one address within a window → 429.

Kept in the database (not process memory) so that every uvicorn process behind a load
balancer sees the same count.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.config import Settings
from app.db import utcnow
from app.errors import TooManyRequests


def check_allowed(db: Session, settings: Settings, *, username: str, ip: str) -> None:
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    key = username.lower()
    by_user = select(func.count()).where(LoginFailure.username == key, LoginFailure.at >= since)
    by_ip = select(func.count()).where(LoginFailure.ip == ip, LoginFailure.at >= since)
    if db.scalar(by_user) >= settings.login_max_failures or db.scalar(by_ip) >= settings.login_max_failures:
        minutes = settings.login_window_minutes
        raise TooManyRequests(
            f"Too many failed logins for this account or address; try again in {minutes} minutes.",
            retry_after=minutes * 60,
        )


def record_failure(db: Session, *, username: str, ip: str) -> None:
    db.add(LoginFailure(username=username.lower()[:200], ip=ip[:64]))


def forget_old(db: Session, settings: Settings) -> None:
    """Failures older than the window are of no use; drop them so the table stays small."""
    cutoff = utcnow() - timedelta(minutes=settings.login_window_minutes)
    db.execute(delete(LoginFailure).where(or_(LoginFailure.at < cutoff)))
