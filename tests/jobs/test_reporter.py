"""The reporter: buffering, fenced flushes, and how a handler learns it was cancelled."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.jobs.exceptions import JobCancelled
from app.jobs.lifecycle import claim_next
from app.jobs.models import Job, JobMetric
from app.jobs.reporter import Reporter
from app.jobs.service import enqueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def running(db, session_factory):
    job = enqueue(db, kind="test.record", params={})
    db.commit()
    claim = claim_next(db, worker_id="w", kinds=["test.record"], lease_seconds=60)
    db.commit()
    clock = Clock()
    return job, Reporter(session_factory, claim, flush_seconds=1.0, clock=clock), clock


def test_writes_are_batched_until_the_flush_interval(db, running):
    job, reporter, clock = running
    reporter.metric(1, "loss", 1.0)
    reporter.progress(0.1, "warming up")
    db.refresh(job)
    assert job.progress == 0.0
    clock.now = 1.5
    reporter.metric(2, "loss", 0.5)  # the interval has passed: this call writes the batch
    db.refresh(job)
    assert (job.progress, job.progress_message) == (0.1, "warming up")
    assert db.scalars(select(JobMetric.step).where(JobMetric.job_id == job.id).order_by(JobMetric.step)).all() == [1, 2]
    reporter.log("step two")
    reporter.progress(0.2)
    reporter.flush()
    db.refresh(job)
    assert (job.progress, job.progress_message) == (0.2, "warming up")
    assert "step two" in job.log_tail


def test_a_cancel_is_seen_at_the_next_step_and_nothing_more_is_written(db, running):
    job, reporter, clock = running
    assert reporter.cancelled() is False
    db.get(Job, job.id).cancel_requested = True
    db.commit()
    assert reporter.cancelled() is False  # not asked again within the flush interval
    clock.now = 1.0
    assert reporter.cancelled() is True
    with pytest.raises(JobCancelled):
        reporter.progress(0.9)
    with pytest.raises(JobCancelled):
        reporter.metric(3, "loss", 0.1)
    reporter.log("ignored")  # logging never raises, and writes nothing
    db.refresh(job)
    assert job.progress == 0.0
    assert "ignored" not in job.log_tail


def test_progress_is_clamped(db, running):
    job, reporter, _ = running
    reporter.progress(7.0, "too far")
    reporter.flush()
    db.refresh(job)
    assert job.progress == 1.0
