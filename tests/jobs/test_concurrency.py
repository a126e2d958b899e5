"""Acceptance 1: two worker processes share a queue of 50 jobs and run each exactly once."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from app.jobs import service
from app.jobs.models import Job, JobStatus
from tests.jobs.conftest import runs, wait_for


def unfinished(sessions) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).where(Job.status.in_([JobStatus.queued, JobStatus.running])))


def test_two_workers_run_fifty_jobs_exactly_once(sessions, worker_procs, marker_dir):
    # A lease long enough that a heartbeat a loaded CI box delays past 5 s is not taken for a dead worker (it
    # re-queued one job of 50 under CI once); what this test checks is that two live workers never share a job.
    for worker in ("worker-a", "worker-b"):
        worker_procs.start(worker, job_lease_seconds=30)
    with sessions() as db, db.begin():  # one commit: both workers see all 50 at once and compete
        ids = [
            service.enqueue(db, kind="test.record", params={"value": i, "marker_dir": str(marker_dir)}).id
            for i in range(50)
        ]
    # a liveness bound, not a timing: each job is a process of its own, and a slow or loaded box needs minutes
    wait_for(lambda: unfinished(sessions) == 0, timeout=400, what="all 50 jobs to finish")
    with sessions() as db:
        jobs = {job.id: job for job in db.scalars(select(Job).where(Job.id.in_(ids)))}
    assert all(job.status is JobStatus.succeeded for job in jobs.values()), [
        (j.id, j.status, j.error) for j in jobs.values()
    ]
    assert all(job.attempts == 1 for job in jobs.values()), [
        (j.id, j.attempts, j.log_tail) for j in jobs.values() if j.attempts != 1
    ]
    assert [jobs[i].result["value"] for i in ids] == list(range(50))
    lines = runs(marker_dir)
    assert "OVERLAP" not in lines
    assert Counter(int(line.split()[0]) for line in lines) == Counter(ids)
    assert {job.worker_id for job in jobs.values()} <= {"worker-a", "worker-b"}
