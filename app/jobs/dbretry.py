"""Retrying database work across short outages (a PostgreSQL restart, a locked SQLite file).

Workers and job processes must outlive a database restart: a heartbeat or progress write that
fails because the server is briefly down is retried with backoff instead of failing the job.
Only errors that say the connection or server is unavailable are retried; constraint
violations and programming errors propagate at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """True for errors that mean 'the database is unreachable right now', not 'this is wrong'."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


def with_retry(fn: Callable[[], T], *, what: str, deadline_seconds: float, max_delay: float = 2.0) -> T:
    """Run ``fn`` (one whole transaction), retrying transient errors until ``deadline_seconds`` pass."""
    deadline = time.monotonic() + deadline_seconds
    delay = 0.1
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: database unavailable (%s); retrying in %.1f s", what, first_line(exc), delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
