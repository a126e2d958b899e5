"""What a handler receives: its job's identity, validated parameters, a reporter, and sessions.

Handlers open their own sessions (they run in a child process, not in a request). Effects that
must not outlive a cancellation or a lost claim go through ``ctx.transaction()``, which commits
only while this attempt still owns the job; keyed by ``ctx.job_id`` (e.g. a unique
``created_by_job_id``) they are idempotent, so a re-run after a crash never registers twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.jobs.lifecycle import Claim, lock_claim
from app.jobs.reporter import Reporter

P = TypeVar("P", bound=BaseModel)


@dataclass
class JobContext(Generic[P]):
    """Everything a handler needs; ``params`` is an instance of the kind's parameter model."""

    claim: Claim
    params: P
    reporter: Reporter
    settings: Settings
    sessions: sessionmaker[Session]

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def attempt(self) -> int:
        """1 on the first run; higher when a crashed attempt is being retried."""
        return self.claim.attempt

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work for the handler's effects, committed only if the job is still ours.

        The ownership check runs last, just before the commit, and locks the job row; a cancel
        or take-over that came first makes it raise ``JobCancelled`` / ``JobLost`` and roll back.
        Keep it short: it holds the job row (on SQLite, the database's write lock) until it ends."""
        with self.sessions() as db, db.begin():
            yield db
            lock_claim(db, self.claim)
