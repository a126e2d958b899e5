"""Crashing jobs: retried until max_attempts, then failed with the reason; idempotent effects."""

from __future__ import annotations

from sqlalchemy import func, select

from app.jobs.models import JobStatus
from app.jobs.worker import run_worker
from app.registry.models import ModelVersion
from tests.jobs.conftest import add_job, load


def run_passes(settings, n: int) -> int:
    return sum(run_worker(settings, worker_id="once", once=True) for _ in range(n))


def test_a_job_killed_every_time_fails_after_max_attempts_with_the_signal(sessions, worker_settings):
    job_id = add_job(sessions, "test.crash", {"mode": "kill"}, max_attempts=3)
    assert run_passes(worker_settings, 4) == 3  # the fourth pass finds nothing to claim
    job = load(sessions, job_id)
    assert job.status is JobStatus.failed
    assert job.attempts == 3
    assert "killed by signal 9" in job.error
    assert "attempt 3 of 3" in job.error


def test_an_exception_is_retried_then_recorded_with_its_traceback(sessions, worker_settings):
    job_id = add_job(sessions, "test.crash", {"mode": "raise"}, max_attempts=2)
    run_passes(worker_settings, 2)
    job = load(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.failed, 2)
    assert job.error.startswith("RuntimeError: boom")
    assert "Traceback" in job.log_tail and "about to raise" in job.log_tail


def test_a_process_exit_is_a_crash_too(sessions, worker_settings):
    job_id = add_job(sessions, "test.crash", {"mode": "exit"}, max_attempts=1)
    run_passes(worker_settings, 1)
    job = load(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.failed, 1)
    assert "exited with code 3" in job.error


def test_job_failed_and_a_bad_result_are_not_retried(sessions, worker_settings):
    failed = add_job(sessions, "test.crash", {"mode": "fail"}, max_attempts=3)
    bad = add_job(sessions, "test.crash", {"mode": "bad_result"}, max_attempts=3)
    run_passes(worker_settings, 3)
    assert (load(sessions, failed).status, load(sessions, failed).attempts) == (JobStatus.failed, 1)
    assert load(sessions, failed).error == "no data to train on"
    assert (load(sessions, bad).status, load(sessions, bad).attempts) == (JobStatus.failed, 1)
    assert "not JSON" in load(sessions, bad).error


def test_bad_input_a_retry_cannot_fix_fails_at_once(sessions, worker_settings):
    """A ValueError (a config's own checks) or a DomainError (a refused value) would recur on every
    attempt: the job fails on its first, with the message, and keeps the traceback in its log."""
    invalid = add_job(sessions, "test.crash", {"mode": "invalid_config"}, max_attempts=3)
    refused = add_job(sessions, "test.crash", {"mode": "refused"}, max_attempts=3)
    assert run_passes(worker_settings, 3) == 2  # one attempt each; the third pass finds nothing
    first, second = load(sessions, invalid), load(sessions, refused)
    assert (first.status, first.attempts) == (JobStatus.failed, 1)
    assert first.error == "ValueError: num_minibatches: must divide batch_size"
    assert "Traceback" in first.log_tail
    assert (second.status, second.attempts) == (JobStatus.failed, 1)
    assert second.error == "model: has no chat template"


def test_a_rerun_after_a_crash_does_not_register_twice(sessions, worker_settings):
    job_id = add_job(sessions, "test.effect", {"crash_on_first_attempt": True})
    run_passes(worker_settings, 2)
    job = load(sessions, job_id)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 2)
    with sessions() as db:
        assert db.scalar(select(func.count()).where(ModelVersion.created_by_job_id == job_id)) == 1
