"""Periodic tasks that workers run (keep the pair pool full, retrain after N new judgements).

Every worker tries every due task, but a task runs only in the worker that takes its
``periodic_leases`` row with one atomic ``UPDATE … WHERE leased_until < now``: whichever
database, only one such update can match, so one worker runs the task per interval. The lease
lasts the interval, so a task must finish well within it; tasks are meant to be quick (look at
the database, enqueue jobs) and leave heavy work to jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import transaction, upsert_insert, utcnow
from app.jobs.models import PeriodicLease

log = logging.getLogger(__name__)

TaskFn = Callable[[Session, Settings], None]


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every_seconds: float
    run: TaskFn  # gets a session in its own transaction, committed when it returns


_TASKS: dict[str, PeriodicTask] = {}


def periodic(name: str, *, every_seconds: float) -> Callable[[TaskFn], TaskFn]:
    """Decorator registering ``fn(db, settings)`` to run about every ``every_seconds`` on one worker."""
    if not name or len(name) > 100 or every_seconds <= 0:
        raise ValueError("a periodic task needs a name of 1-100 characters and a positive interval")

    def decorate(fn: TaskFn) -> TaskFn:
        _TASKS[name] = PeriodicTask(name=name, every_seconds=every_seconds, run=fn)
        return fn

    return decorate


def unregister(name: str) -> None:
    """Forget a task (tests register temporary ones)."""
    _TASKS.pop(name, None)


def tasks() -> list[PeriodicTask]:
    return [_TASKS[name] for name in sorted(_TASKS)]


def take_lease(db: Session, *, name: str, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Try to become the runner of ``name`` for ``seconds``; True if this caller won."""
    now = now or utcnow()
    _ensure_row(db, name)
    result = db.execute(
        update(PeriodicLease)
        .where(PeriodicLease.name == name, or_(PeriodicLease.leased_until.is_(None), PeriodicLease.leased_until < now))
        .values(holder=holder, leased_until=now + timedelta(seconds=seconds), last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _ensure_row(db: Session, name: str) -> None:
    """Create the task's lease row if missing; concurrent creators do not conflict."""
    db.execute(
        upsert_insert(db.get_bind().dialect.name, PeriodicLease)
        .values(name=name)
        .on_conflict_do_nothing(index_elements=["name"])
    )


def run_due(sessions: sessionmaker[Session], settings: Settings, *, holder: str) -> list[str]:
    """Run each registered task whose lease this worker can take; returns the names it ran.

    A failing task is logged and tried again at its next interval; it never stops the worker."""
    ran = []
    for task in tasks():
        with transaction(sessions) as db:
            if not take_lease(db, name=task.name, holder=holder, seconds=task.every_seconds):
                continue
        try:
            with transaction(sessions) as db:
                task.run(db, settings)
            ran.append(task.name)
        except Exception:
            log.exception("periodic task %s failed", task.name)
    return ran
