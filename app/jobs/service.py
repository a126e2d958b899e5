"""Jobs as the rest of the app sees them: enqueue, list, read, cancel, curves and logs.

Enqueueing only adds the row to the caller's session: the job exists if and only if the
caller's transaction commits, so a rolled-back request leaves no job behind. A job a person asks for
is checked against the kind's audience (a researcher cannot queue an export) and validated with the
database and settings at hand (``registry.QueueContext``: where a model may be loaded from); a job
the app queues of its own accord (``created_by`` None: the pool's refill, the first start's
bootstrap) is the deployment's own and skips both. What workers do to
a job (claim, heartbeat, finish, re-queue) lives in ``lifecycle``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.config import Settings
from app.db import utcnow
from app.errors import Forbidden, Invalid
from app.jobs import registry
from app.jobs.lifecycle import TRACEBACK_MARK, leave_queue
from app.jobs.models import Job, JobMetric, JobStatus
from app.jobs.policy import can_cancel
from app.lookup import get_or_404

DEFAULT_MAX_ATTEMPTS = 3
MAX_PAGE = 200
HIDDEN_TRACEBACK = "[a traceback: admins can read it; the job's error says what went wrong]\n"


def enqueue(
    db: Session,
    *,
    kind: str,
    params: dict[str, Any] | None = None,
    created_by: User | None = None,
    max_attempts: int | None = None,
    settings: Settings | None = None,
) -> Job:
    """Validate and add a queued job to ``db`` without committing (the caller's commit publishes it).

    With ``created_by``, a user who may not queue ``kind`` is refused (``Forbidden``) before anything
    else is looked at, and the parameters are checked against ``settings`` (default: read from the
    environment, as the server does)."""
    queue = None
    if created_by is not None:
        spec = registry.get_kind(kind)
        if not spec.allows(created_by.role):
            raise Forbidden(f"{kind} jobs need the {spec.audience.value} role; you are {created_by.role.value}")
        queue = registry.QueueContext(db=db, settings=settings or Settings())
    stored = registry.validate_params(kind, params, queue=queue)
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
    db: Session,
    *,
    kind: str,
    params: dict[str, Any] | None,
    created_by: User,
    max_attempts: int | None = None,
    settings: Settings | None = None,
) -> Job:
    """Enqueue and commit: a job asked for on its own (the API's POST), not as part of other work."""
    job = enqueue(db, kind=kind, params=params, created_by=created_by, max_attempts=max_attempts, settings=settings)
    db.commit()
    return job


def in_flight(db: Session, kind: str, **params: Any) -> Job | None:
    """The oldest queued or running job of ``kind`` whose parameters include ``params``: what a page or a
    periodic task checks before asking for a job it needs once (a handful of rows of one kind)."""
    active = db.scalars(
        select(Job).where(Job.kind == kind, Job.status.in_([JobStatus.queued, JobStatus.running])).order_by(Job.id)
    )
    return next((job for job in active if all((job.params or {}).get(k) == v for k, v in params.items())), None)


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
        leave_queue(
            job_id,
            status=JobStatus.cancelled,
            cancel_requested=True,
            finished_at=utcnow(),
            progress_message="cancelled before it ran",
        )
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


def visible_log(job: Job, viewer: User) -> str:
    """The job's log as ``viewer`` may read it: admins see all of it; anyone else sees every line but the
    tracebacks (they name the server's files and libraries), each replaced by one line saying so.
    The job's ``error`` says what went wrong either way."""
    if viewer.role is Role.admin:
        return job.log_tail
    return without_tracebacks(job.log_tail)


def without_tracebacks(log: str) -> str:
    """``log`` with each run of traceback lines (``lifecycle.TRACEBACK_MARK``) replaced by a note."""
    kept: list[str] = []
    for line in log.splitlines(keepends=True):
        if not line.startswith(TRACEBACK_MARK):
            kept.append(line)
        elif not kept or kept[-1] != HIDDEN_TRACEBACK:
            kept.append(HIDDEN_TRACEBACK)
    return "".join(kept)


def log_tail(db: Session, *, job_id: int, viewer: User) -> str:
    return visible_log(get_job(db, job_id), viewer)
