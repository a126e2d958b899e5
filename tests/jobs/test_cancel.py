"""Acceptance 4: cancelling queued, running and finished jobs, with real worker processes."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from app.jobs import service
from app.jobs.models import JobMetric, JobStatus
from app.jobs.worker import run_worker
from tests.jobs.conftest import add_job, load, runs, wait_finished, wait_for
from tests.jobs.test_takeover import alive


def cancel(sessions, job_id: int, actor) -> None:
    with sessions() as db:
        service.cancel(db, job_id=job_id, actor=actor)


def metric_count(sessions, job_id: int) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).where(JobMetric.job_id == job_id))


def test_a_cancelled_queued_job_never_runs(sessions, worker_settings, make_user, marker_dir):
    owner = make_user()
    job_id = add_job(sessions, "test.record", {"marker_dir": str(marker_dir)}, created_by=owner)
    cancel(sessions, job_id, owner)
    assert run_worker(worker_settings, worker_id="w", once=True) == 0
    job = load(sessions, job_id)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.cancelled, 0, None)
    assert runs(marker_dir) == []


def test_a_running_job_stops_within_five_seconds_and_writes_nothing_more(
    sessions, thread_workers, make_user, marker_dir
):
    owner = make_user()
    job_id = add_job(
        sessions, "test.record", {"steps": 400, "step_seconds": 0.05, "marker_dir": str(marker_dir)}, created_by=owner
    )
    thread_workers("w")
    wait_for(lambda: load(sessions, job_id).progress > 0, timeout=60, what="the job to make progress")
    asked = time.monotonic()
    cancel(sessions, job_id, owner)
    job = wait_finished(sessions, job_id, timeout=30)
    assert time.monotonic() - asked <= 5.0
    assert (job.status, job.attempts) == (JobStatus.cancelled, 1)
    points, progress = metric_count(sessions, job_id), job.progress
    time.sleep(1.0)  # anything still running would have written by now
    job = load(sessions, job_id)
    assert (job.status, job.progress, metric_count(sessions, job_id)) == (JobStatus.cancelled, progress, points)
    assert progress < 1.0
    assert len(runs(marker_dir)) == 1  # not retried


def test_a_job_that_never_reports_is_killed_by_its_worker(sessions, thread_workers, make_user, marker_dir):
    owner = make_user()
    job_id = add_job(sessions, "test.stubborn", {"seconds": 60, "marker_dir": str(marker_dir)}, created_by=owner)
    thread_workers("w")
    wait_for(lambda: runs(marker_dir), timeout=60, what="the job to start")
    pid = int(runs(marker_dir)[0].split()[2])
    asked = time.monotonic()
    cancel(sessions, job_id, owner)
    job = wait_finished(sessions, job_id, timeout=30)
    assert time.monotonic() - asked <= 5.0
    assert (job.status, job.attempts) == (JobStatus.cancelled, 1)
    wait_for(lambda: not alive(pid), timeout=10, what="the job process to be gone")


def test_cancelling_a_finished_job_changes_nothing(sessions, worker_settings, make_user):
    owner = make_user()
    job_id = add_job(sessions, "test.record", {"value": 7}, created_by=owner)
    run_worker(worker_settings, worker_id="w", once=True)
    before = load(sessions, job_id)
    cancel(sessions, job_id, owner)
    after = load(sessions, job_id)
    assert before.status is JobStatus.succeeded
    fields = ("status", "finished_at", "result", "cancel_requested", "attempts", "log_tail")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]
