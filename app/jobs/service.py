"""Jobs as the rest of the app sees them: enqueue, list, read, cancel, curves and logs.

Enqueueing only adds the row to the caller's session: the job exists if and only if the
caller's transaction commits, so a rolled-back request leaves no job behind. What workers do to
a job (claim, heartbeat, finish, re-queue) lives in ``lifecycle``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth.models import User
from app.db import utcnow
from app.errors import Forbidden, Invalid
from app.jobs import registry
from app.jobs.models import Job, JobMetric, JobStatus
from app.jobs.policy import can_cancel
from app.lookup import get_or_404

DEFAULT_MAX_ATTEMPTS = 3
MAX_PAGE = 200


def enqueue(
    db: Session,
    *,
    kind: str,
    params: dict[str, Any] | None = None,
    created_by: User | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Validate and add a queued job to ``db`` without committing (the caller's commit publishes it)."""
    stored = registry.validate_params(kind, params)
    attempts = DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if attempts < 1:
        raise Invalid("max_attempts", "must be at least 1")
    job = Job(
        kind=kind,
        params=stored,
        status=JobStatus.queued,
        max_attempts=attempts,
        created_by_id=created_by.id if created_by is not None else None,
    )
    db.add(job)
    db.flush()
    return job


def create_job(
    db: Session, *, kind: str, params: dict[str, Any] | None, created_by: User, max_attempts: int | None = None
) -> Job:
    """Enqueue and commit: a job asked for on its own (the API's POST), not as part of other work."""
    job = enqueue(db, kind=kind, params=params, created_by=created_by, max_attempts=max_attempts)
    db.commit()
    return job


def get_job(db: Session, job_id: int) -> Job:
    return get_or_404(db, Job, job_id, "job")


def list_jobs(
    db: Session, *, status: JobStatus | None = None, kind: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Job], int]:
    """One page of jobs, newest first, and the total matching the filters."""
    conditions = []
    if status is not None:
        conditions.append(Job.status == status)
    if kind is not None:
        conditions.append(Job.kind == kind)
    total = db.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    page = db.scalars(select(Job).where(*conditions).order_by(Job.id.desc()).limit(min(limit, MAX_PAGE)).offset(offset))
    return list(page), total


def cancel(db: Session, *, job_id: int, actor: User) -> Job:
    """Cancel a job: a queued one never runs, a running one is asked to stop, a finished one is left as is.

    Both updates are conditional on the status, so a worker claiming the job at the same moment
    either sees it cancelled (queued → cancelled came first) or gets the cancel request."""
    job = get_job(db, job_id)
    if not can_cancel(actor, job):
        raise Forbidden("only the job's creator or an admin may cancel it")
    if job.status.finished:
        return job
    done = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(
            status=JobStatus.cancelled,
            cancel_requested=True,
            finished_at=utcnow(),
            progress_message="cancelled before it ran",
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 0:
        db.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.running)
            .values(cancel_requested=True)
            .execution_options(synchronize_session=False)
        )
    db.commit()
    db.refresh(job)
    return job


def metrics(db: Session, *, job_id: int, name: str | None = None, since_step: int | None = None) -> list[JobMetric]:
    """A job's metric points by name and step; ``since_step`` lets a dashboard poll for new points."""
    get_job(db, job_id)
    query = select(JobMetric).where(JobMetric.job_id == job_id)
    if name is not None:
        query = query.where(JobMetric.name == name)
    if since_step is not None:
        query = query.where(JobMetric.step > since_step)
    return list(db.scalars(query.order_by(JobMetric.name, JobMetric.step, JobMetric.id)))


def log_tail(db: Session, *, job_id: int) -> str:
    return get_job(db, job_id).log_tail
