"""``rlhf serve`` stops its worker with SIGTERM: the worker ends cleanly and hands its job back."""

from __future__ import annotations

import signal
import subprocess

from app.jobs.models import JobStatus
from tests.jobs.conftest import add_job, load, runs, wait_for
from tests.jobs.test_takeover import alive


def test_sigterm_stops_the_worker_and_requeues_its_job_without_using_an_attempt(sessions, worker_procs, marker_dir):
    job_id = add_job(sessions, "test.stubborn", {"seconds": 60, "marker_dir": str(marker_dir)})
    proc = worker_procs.start("stopping")
    wait_for(lambda: runs(marker_dir), timeout=60, what="the job to start")
    pid = int(runs(marker_dir)[0].split()[2])
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, worker_procs.output("stopping")
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker did not stop on SIGTERM:\n" + worker_procs.output("stopping")) from None
    job = load(sessions, job_id)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.queued, 0, None)
    assert "re-queued" in job.log_tail
    assert not alive(pid)
