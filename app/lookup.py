"""Fetching one row by id for a service, where a missing row is the caller's mistake, not ours.

It imports only SQLAlchemy and :mod:`app.errors`, so services, jobs and the CLI can use it without
the web stack; :mod:`app.http_errors` turns the ``NotFound`` into a 404 page or answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.errors import NotFound

T = TypeVar("T")


def get_or_404(
    db: Session,
    model: type[T],
    ident: Any,
    what: str | None = None,
    *,
    where: Callable[[T], bool] | None = None,
    message: str | None = None,
    for_update: bool = False,
) -> T:
    """The row with primary key ``ident``, or ``NotFound("<what> <ident> not found")``.

    ``where`` makes a row that exists but is not the caller's (another user's token, a job of
    another kind) answer exactly like a missing one, so ids of other people's rows leak nothing.
    ``message`` replaces the text where a page says more than "not found". ``for_update`` locks
    the row until commit on PostgreSQL, and reads it past the identity map so the lock is taken.
    """
    row = db.get(model, ident, with_for_update=True if for_update else None)
    if row is None or (where is not None and not where(row)):
        raise NotFound(message or f"{what or model.__name__} {ident} not found")
    return row
