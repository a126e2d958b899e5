"""The worker-side state machine on one session: claim order, fencing, heartbeats, re-queueing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import utcnow
from app.jobs.exceptions import JobCancelled, JobLost
from app.jobs.lifecycle import (
    LOG_TAIL_CHARS,
    Beat,
    Claim,
    MetricPoint,
    Outcome,
    appended,
    claim_next,
    end_attempt,
    heartbeat,
    record_report,
    release,
    requeue_stale,
)
from app.jobs.models import Job, JobMetric, JobStatus
from app.jobs.service import enqueue

KINDS = ["test.record", "test.crash"]


def take(db, worker="w1", kinds=KINDS) -> Claim:
    claim = claim_next(db, worker_id=worker, kinds=kinds, lease_seconds=60)
    assert claim is not None
    return claim


def test_claims_the_oldest_queued_job_of_a_known_kind(db):
    first = enqueue(db, kind="test.record", params={"value": 1})
    second = enqueue(db, kind="test.crash", params={"mode": "raise"})
    assert take(db, kinds=["test.crash"]).job_id == second.id
    claim = take(db)
    assert (claim.job_id, claim.attempt, claim.kind) == (first.id, 1, "test.record")
    db.refresh(first)
    assert (first.status, first.worker_id, first.attempts) == (JobStatus.running, "w1", 1)
    assert claim_next(db, worker_id="w2", kinds=KINDS, lease_seconds=60) is None
    assert claim_next(db, worker_id="w2", kinds=[], lease_seconds=60) is None


def test_a_stale_claim_can_change_nothing(db):
    job = enqueue(db, kind="test.record", params={})
    old = take(db)
    assert requeue_stale(db, now=utcnow() + timedelta(seconds=61)) == [job.id]
    new = take(db, worker="w2")
    assert new.attempt == 2
    assert heartbeat(db, old) is Beat.lost
    assert end_attempt(db, old, Outcome.succeeded, result={"x": 1}) is False
    with pytest.raises(JobLost):
        record_report(db, old, progress=(0.5, "half"))
    assert heartbeat(db, new) is Beat.alive
    assert end_attempt(db, new, Outcome.succeeded, result={"x": 2}) is True
    db.refresh(job)
    assert (job.status, job.result, job.progress, job.attempts) == (JobStatus.succeeded, {"x": 2}, 1.0, 2)


def test_fresh_heartbeats_are_never_taken_over(db):
    job = enqueue(db, kind="test.record", params={})
    claim = take(db)
    assert requeue_stale(db, now=utcnow() + timedelta(seconds=59)) == []
    assert heartbeat(db, claim) is Beat.alive
    db.refresh(job)
    assert job.status is JobStatus.running


def test_a_worker_does_not_requeue_its_own_job(db):
    enqueue(db, kind="test.record", params={})
    take(db, worker="me")
    assert requeue_stale(db, now=utcnow() + timedelta(seconds=120), exclude_worker="me") == []


def test_after_max_attempts_a_lost_job_fails_with_the_reason(db):
    job = enqueue(db, kind="test.record", params={}, max_attempts=2)
    for attempt in (1, 2):
        take(db, worker=f"w{attempt}")
        requeue_stale(db, now=utcnow() + timedelta(seconds=61))
    db.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.failed, 2)
    assert "stopped heartbeating" in job.error and "attempt 2 of 2" in job.error
    assert job.finished_at is not None


def test_a_cancel_request_wins_over_a_crash(db):
    job = enqueue(db, kind="test.record", params={})
    claim = take(db)
    job.cancel_requested = True
    db.flush()
    assert heartbeat(db, claim) is Beat.cancel
    assert end_attempt(db, claim, Outcome.crashed, error="boom") is True
    db.refresh(job)
    assert job.status is JobStatus.cancelled


def test_a_cancelled_job_accepts_no_more_reports(db):
    job = enqueue(db, kind="test.record", params={})
    claim = take(db)
    record_report(db, claim, progress=(0.25, "quarter"), metrics=[MetricPoint(1, "loss", 2.0)], log_lines=["hello"])
    job.cancel_requested = True
    db.flush()
    with pytest.raises(JobCancelled):
        record_report(db, claim, progress=(0.5, "half"), metrics=[MetricPoint(2, "loss", 1.0)], log_lines=["more"])
    db.refresh(job)
    assert (job.progress, job.progress_message, job.log_tail) == (0.25, "quarter", "hello\n")
    assert db.scalars(select(JobMetric.step).where(JobMetric.job_id == job.id)).all() == [1]


def test_release_hands_the_job_back_without_using_an_attempt(db):
    job = enqueue(db, kind="test.record", params={})
    claim = take(db)
    assert release(db, claim, reason="worker stopped") is True
    db.refresh(job)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.queued, 0, None)
    assert take(db).attempt == 1


def test_the_log_tail_keeps_the_end_at_a_line_boundary():
    log = appended("", [f"line {i}" for i in range(20000)])
    assert len(log) <= LOG_TAIL_CHARS
    assert log.endswith("line 19999\n")
    assert log.startswith("line ")
    assert appended("a\n", []) == "a\n"


def test_non_finite_metric_points_are_not_stored(db):
    job = enqueue(db, kind="test.record", params={})
    claim = take(db)
    record_report(db, claim, metrics=[MetricPoint(1, "loss", float("nan")), MetricPoint(2, "loss", 0.5)])
    assert db.execute(select(JobMetric.step, JobMetric.value).where(JobMetric.job_id == job.id)).all() == [(2, 0.5)]
    assert db.get(Job, job.id) is not None
