"""Login throttling: too many failures within a window → 429 with ``Retry-After``.

Keyed on (account, client address), so that failing logins for someone else's account from one
address does not lock its owner out everywhere, and one address failing for many accounts does
not lock out everyone else behind it (a shared NAT); a higher per-address ceiling still stops one
client from guessing across many accounts.

Kept in the database (not process memory) so that every uvicorn process behind a load
balancer sees the same count.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from app.auth.models import LoginFailure
from app.config import Settings
from app.db import utcnow
from app.errors import TooManyRequests


def _retry_after(db: Session, where: ColumnElement[bool], limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until fewer than ``limit`` failures matching ``where`` lie in the window; None when already so."""
    counted = db.scalars(
        select(LoginFailure.at)
        .where(where, LoginFailure.at >= now - window)
        .order_by(LoginFailure.at.desc())
        .limit(limit)
    ).all()
    if len(counted) < limit:
        return None
    freed_at = counted[limit - 1] + window  # the oldest failure that keeps the count at the limit ages out
    return max(1, math.ceil((freed_at - now).total_seconds()))


def check_allowed(db: Session, settings: Settings, *, username: str, ip: str) -> None:
    now = utcnow()
    window = timedelta(minutes=settings.login_window_minutes)
    key = username.lower()[:200]
    client = ip[:64]
    by_pair = _retry_after(
        db, (LoginFailure.username == key) & (LoginFailure.ip == client), settings.login_max_failures, window, now
    )
    if by_pair is not None:
        raise TooManyRequests(_message("this account from your address", by_pair), retry_after=by_pair)
    by_client = _retry_after(db, LoginFailure.ip == client, settings.login_max_failures_per_client, window, now)
    if by_client is not None:
        raise TooManyRequests(_message("your address", by_client), retry_after=by_client)


def _message(what: str, seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed logins for {what}; try again in {minutes} minute{'s' if minutes != 1 else ''}."


def record_failure(db: Session, *, username: str, ip: str) -> None:
    db.add(LoginFailure(username=username.lower()[:200], ip=ip[:64]))


def forget_old(db: Session, settings: Settings) -> None:
    """Failures older than the window are of no use; drop them so the table stays small."""
    cutoff = utcnow() - timedelta(minutes=settings.login_window_minutes)
    db.execute(delete(LoginFailure).where(LoginFailure.at < cutoff))
