"""Acceptance 2 and 3: a killed worker's job moves to another worker; a live one is left alone."""

from __future__ import annotations

import signal
from pathlib import Path

from app.jobs.lifecycle import requeue_stale
from app.jobs.models import JobStatus
from tests.jobs.conftest import add_job, load, runs, wait_finished, wait_for


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie awaiting its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_sigkilled_workers_job_completes_on_the_other_worker(sessions, worker_procs, marker_dir):
    doomed = worker_procs.start("doomed")
    job_id = add_job(sessions, "test.record", {"steps": 25, "step_seconds": 0.1, "marker_dir": str(marker_dir)})
    wait_for(lambda: load(sessions, job_id).status is JobStatus.running, timeout=60, what="the first attempt to start")
    survivor = worker_procs.start("survivor")  # idle: the only job is taken
    wait_for(lambda: load(sessions, job_id).progress > 0, timeout=60, what="the first attempt to make progress")
    first_pid = int(runs(marker_dir)[0].split()[2])

    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    wait_for(lambda: not alive(first_pid), timeout=15, what="the orphaned job process to die with its worker")
    job = wait_finished(sessions, job_id, timeout=90)

    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 2, "survivor"), worker_procs.output(
        "survivor"
    )
    assert "stopped heartbeating" in job.log_tail
    lines = runs(marker_dir)
    assert "OVERLAP" not in lines  # the second attempt never ran beside a live first one
    assert [line.split()[1] for line in lines] == ["1", "2"]
    assert survivor.poll() is None


def test_a_long_job_with_live_heartbeats_is_not_taken_over(sessions, thread_workers, marker_dir):
    thread_workers("runner")
    job_id = add_job(sessions, "test.record", {"steps": 13, "step_seconds": 0.5, "marker_dir": str(marker_dir)})
    wait_for(lambda: load(sessions, job_id).status is JobStatus.running, timeout=30, what="the job to start")
    taken: list[int] = []

    def look_for_dead_workers_meanwhile() -> bool:  # what every other worker does, all the time
        with sessions() as db, db.begin():
            taken.extend(requeue_stale(db))
        return load(sessions, job_id).status.finished

    wait_for(look_for_dead_workers_meanwhile, timeout=60, what="the job to finish")  # 6.5 s of work, 5 s lease
    job = load(sessions, job_id)
    assert taken == []
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 1, "runner")
    assert len(runs(marker_dir)) == 1
