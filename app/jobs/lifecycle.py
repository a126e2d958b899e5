"""The job state machine as workers drive it: claim, heartbeat, report, end an attempt, re-queue.

Every write made on behalf of a claimed job is *fenced*: it applies only while the row still
shows the same claim (status running, this worker, this attempt number). A process that lost its
claim — its heartbeats stopped long enough for another worker to re-queue the job — can therefore
change nothing, which is what makes at-least-once delivery safe. None of these functions commits:
the caller wraps each in one transaction (``app.db.transaction``), so a step is all or nothing.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Update, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.exceptions import JobCancelled, JobLost
from app.jobs.models import Job, JobMetric, JobStatus

LOG_TAIL_CHARS = 64 * 1024  # the bounded log kept per job: the end of it is what one debugs
# Starts every line of a traceback in the log: admins read them, others see a note instead (service.visible_log).
# Marked per line, not as a block, so the tail's cut cannot leave half a traceback unmarked.
TRACEBACK_MARK = "\u2506 "
NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True)
class Claim:
    """One attempt's hold on a job: the fencing token every write of that attempt carries."""

    job_id: int
    attempt: int
    worker_id: str
    kind: str

    def owns(self) -> ColumnElement[bool]:
        """SQL condition: the row is still held by exactly this attempt."""
        return and_(
            Job.id == self.job_id,
            Job.status == JobStatus.running,
            Job.attempts == self.attempt,
            Job.worker_id == self.worker_id,
        )


class Outcome(enum.StrEnum):
    succeeded = "succeeded"
    cancelled = "cancelled"
    failed = "failed"  # permanent: JobFailed, a DomainError or ValueError (bad input), invalid stored params, …
    crashed = "crashed"  # retried until max_attempts: an exception, a dead process, a lost worker


class Beat(enum.StrEnum):
    alive = "alive"
    cancel = "cancel"  # still ours, but someone asked to cancel it
    lost = "lost"  # no longer ours: stop the attempt


@dataclass(frozen=True)
class MetricPoint:
    step: int
    name: str
    value: float


def appended(log: str, lines: Sequence[str], limit: int = LOG_TAIL_CHARS) -> str:
    """``log`` plus ``lines``, cut to the last ``limit`` characters at a line boundary."""
    if not lines:
        return log
    text = log + "".join(line.rstrip("\n") + "\n" for line in lines)
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    return tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail


def leave_queue(job_id: int, **values: Any) -> Update:
    """An UPDATE of a job that applies only while the job is still queued: the status is the
    compare-and-set that lets a worker's claim and a user's cancel race without both winning."""
    return (
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued)
        .values(**values)
        .execution_options(**NO_SYNC)
    )


def claim_next(db: Session, *, worker_id: str, kinds: Collection[str], lease_seconds: int) -> Claim | None:
    """Take the oldest queued job of a kind this worker can run, or None.

    ``FOR UPDATE SKIP LOCKED`` lets any number of PostgreSQL workers claim concurrently without
    waiting on or double-taking a row; on SQLite the ``BEGIN IMMEDIATE`` write lock serialises
    claims instead. The attempt counter is the fencing token, so it is bumped here."""
    if not kinds:
        return None
    candidate = db.scalar(
        select(Job.id)
        .where(Job.status == JobStatus.queued, Job.kind.in_(list(kinds)))
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if candidate is None:
        return None
    now = utcnow()
    claimed = leave_queue(
        candidate,
        status=JobStatus.running,
        worker_id=worker_id,
        attempts=Job.attempts + 1,
        heartbeat_at=now,
        lease_seconds=lease_seconds,
        started_at=now,
    )
    row = db.execute(claimed.returning(Job.attempts, Job.kind)).first()
    if row is None:
        return None
    return Claim(job_id=candidate, attempt=row.attempts, worker_id=worker_id, kind=row.kind)


def heartbeat(db: Session, claim: Claim) -> Beat:
    """Prove the attempt is alive; learn whether it was cancelled or taken away meanwhile."""
    row = db.execute(
        update(Job)
        .where(claim.owns())
        .values(heartbeat_at=utcnow())
        .returning(Job.cancel_requested)
        .execution_options(**NO_SYNC)
    ).first()
    if row is None:
        return Beat.lost
    return Beat.cancel if row.cancel_requested else Beat.alive


def lock_claim(db: Session, claim: Claim) -> Job:
    """Lock the job row for this attempt, or raise ``JobLost`` / ``JobCancelled``.

    Taken just before an attempt's transaction commits: on PostgreSQL the row lock makes a
    concurrent cancel wait for our commit, so whatever commits after a cancel is refused."""
    job = db.scalar(select(Job).where(claim.owns()).with_for_update().execution_options(populate_existing=True))
    if job is None:
        raise JobLost(f"job {claim.job_id} attempt {claim.attempt} no longer belongs to worker {claim.worker_id}")
    if job.cancel_requested:
        raise JobCancelled(f"job {claim.job_id} was cancelled")
    return job


def record_report(
    db: Session,
    claim: Claim,
    *,
    progress: tuple[float, str] | None = None,
    metrics: Sequence[MetricPoint] = (),
    log_lines: Sequence[str] = (),
) -> None:
    """Write a batch of progress, metric points and log lines for a live, uncancelled attempt."""
    job = lock_claim(db, claim)
    if progress is not None:
        job.progress, job.progress_message = progress[0], progress[1][:500]
    if log_lines:
        job.log_tail = appended(job.log_tail, log_lines)
    points = [
        {"job_id": claim.job_id, "step": p.step, "name": p.name[:100], "value": p.value}
        for p in metrics
        if math.isfinite(p.value)
    ]
    if points:
        db.execute(insert(JobMetric), points)
    db.flush()


def end_attempt(
    db: Session,
    claim: Claim,
    outcome: Outcome,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    log_lines: Sequence[str] = (),
    extra: Sequence[ColumnElement[bool]] = (),
) -> bool:
    """Close this attempt. Returns False, changing nothing, if the attempt no longer owns the job.

    A crash re-queues the job until ``max_attempts`` is used up, then fails it with the reason;
    a job whose cancellation was requested ends cancelled whatever happened to the attempt."""
    job = db.scalar(select(Job).where(claim.owns(), *extra).with_for_update().execution_options(populate_existing=True))
    if job is None:
        return False
    now = utcnow()
    status = _next_status(job, claim, outcome)
    notes = list(log_lines)
    if status is JobStatus.queued:
        notes.append(f"[attempt {claim.attempt} of {job.max_attempts} crashed: {error}; re-queued]")
        job.worker_id, job.heartbeat_at, job.progress_message = None, None, f"re-queued after: {error}"[:500]
    elif status is JobStatus.cancelled:
        notes.append(f"[cancelled during attempt {claim.attempt}]")
        job.progress_message = "cancelled"
    elif status is JobStatus.failed:
        error = f"{error} (attempt {claim.attempt} of {job.max_attempts})" if outcome is Outcome.crashed else error
        notes.append(f"[failed: {error}]")
    else:
        job.result, job.progress, job.progress_message = result or {}, 1.0, "done"
    job.status, job.log_tail = status, appended(job.log_tail, notes)
    if error and status is not JobStatus.cancelled:
        job.error = error
    if status.finished:
        job.finished_at = now
    db.flush()
    return True


def _next_status(job: Job, claim: Claim, outcome: Outcome) -> JobStatus:
    if outcome is Outcome.succeeded:
        return JobStatus.succeeded
    if outcome is Outcome.cancelled or job.cancel_requested:
        return JobStatus.cancelled
    if outcome is Outcome.failed or claim.attempt >= job.max_attempts:
        return JobStatus.failed
    return JobStatus.queued


def release(db: Session, claim: Claim, *, reason: str) -> bool:
    """Hand a job back unfinished because its worker is shutting down (its process is gone).

    The attempt is not counted against ``max_attempts``: stopping a server is not the job's fault."""
    job = db.scalar(select(Job).where(claim.owns()).with_for_update().execution_options(populate_existing=True))
    if job is None:
        return False
    if job.cancel_requested:
        return end_attempt(db, claim, Outcome.cancelled)
    job.status, job.worker_id, job.heartbeat_at = JobStatus.queued, None, None
    job.attempts = claim.attempt - 1
    job.progress_message = f"re-queued: {reason}"[:500]
    job.log_tail = appended(job.log_tail, [f"[attempt {claim.attempt} interrupted: {reason}; re-queued]"])
    db.flush()
    return True


def requeue_stale(db: Session, *, now: datetime | None = None, exclude_worker: str | None = None) -> list[int]:
    """Re-queue (or fail, after max_attempts) running jobs whose heartbeat is older than their lease.

    Any worker may call this; it skips its own jobs (``exclude_worker``), which it knows are alive.
    The update repeats the staleness test, so a job whose worker heartbeats between our read and
    our write is left alone: fresh heartbeats are never taken over."""
    now = now or utcnow()
    query = select(Job.id, Job.attempts, Job.worker_id, Job.kind, Job.heartbeat_at, Job.lease_seconds).where(
        Job.status == JobStatus.running
    )
    if exclude_worker is not None:
        query = query.where(or_(Job.worker_id.is_(None), Job.worker_id != exclude_worker))
    running = db.execute(query).all()
    requeued = []
    for row in running:
        cutoff = now - timedelta(seconds=row.lease_seconds)
        if row.heartbeat_at is not None and row.heartbeat_at >= cutoff:
            continue
        claim = Claim(job_id=row.id, attempt=row.attempts, worker_id=row.worker_id or "", kind=row.kind)
        still_stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)
        reason = f"worker {row.worker_id} stopped heartbeating for over {row.lease_seconds} s"
        if end_attempt(db, claim, Outcome.crashed, error=reason, extra=[still_stale]):
            requeued.append(row.id)
    return requeued
