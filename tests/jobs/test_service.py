"""Enqueueing (part of the caller's transaction), listing, and the cancel rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.auth.models import Role
from app.errors import Forbidden, Invalid, NotFound
from app.jobs import service
from app.jobs.lifecycle import Outcome, claim_next, end_attempt
from app.jobs.models import Job, JobStatus
from tests.factories import UserFactory


def count_jobs(sessions) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(Job))


def test_a_rolled_back_transaction_leaves_no_job(sessions):
    with sessions() as db:
        job = service.enqueue(db, kind="test.record", params={"value": 1})
        assert job.id is not None  # flushed, visible inside the transaction
        db.rollback()
    assert count_jobs(sessions) == 0
    with sessions() as db, db.begin():
        service.enqueue(db, kind="test.record", params={"value": 2})
    assert count_jobs(sessions) == 1


def test_enqueue_refuses_bad_input_and_writes_nothing(db):
    with pytest.raises(Invalid) as raised:
        service.enqueue(db, kind="test.offered", params={"size": 0})
    assert raised.value.field == "params.size"
    with pytest.raises(Invalid):
        service.enqueue(db, kind="nope", params={})
    with pytest.raises(Invalid):
        service.enqueue(db, kind="test.offered", params={"size": 1}, max_attempts=0)
    assert db.scalar(select(func.count()).select_from(Job)) == 0


def test_list_filters_and_pages_newest_first(db):
    ids = [service.enqueue(db, kind="test.record", params={"value": i}).id for i in range(5)]
    other = service.enqueue(db, kind="test.offered", params={"size": 1})
    page, total = service.list_jobs(db, kind="test.record", limit=2, offset=1)
    assert total == 5
    assert [j.id for j in page] == [ids[3], ids[2]]
    queued, _ = service.list_jobs(db, status=JobStatus.queued)
    assert other.id in [j.id for j in queued]
    assert service.list_jobs(db, status=JobStatus.running) == ([], 0)
    with pytest.raises(NotFound):
        service.get_job(db, 10**9)


class TestCancel:
    def test_a_queued_job_is_cancelled_and_never_claimed(self, db):
        owner = UserFactory(role=Role.researcher)
        job = service.enqueue(db, kind="test.record", params={}, created_by=owner)
        assert service.cancel(db, job_id=job.id, actor=owner).status is JobStatus.cancelled
        assert job.finished_at is not None
        assert claim_next(db, worker_id="w", kinds=["test.record"], lease_seconds=60) is None

    def test_a_running_job_is_asked_to_stop(self, db):
        owner = UserFactory(role=Role.researcher)
        job = service.enqueue(db, kind="test.record", params={}, created_by=owner)
        claim_next(db, worker_id="w", kinds=["test.record"], lease_seconds=60)
        cancelled = service.cancel(db, job_id=job.id, actor=owner)
        assert (cancelled.status, cancelled.cancel_requested) == (JobStatus.running, True)

    def test_a_finished_job_does_not_change(self, db):
        owner = UserFactory(role=Role.researcher)
        job = service.enqueue(db, kind="test.record", params={}, created_by=owner)
        claim = claim_next(db, worker_id="w", kinds=["test.record"], lease_seconds=60)
        end_attempt(db, claim, Outcome.succeeded, result={"ok": True})
        db.commit()
        before = (job.status, job.finished_at, job.result, job.cancel_requested)
        after = service.cancel(db, job_id=job.id, actor=owner)
        assert (after.status, after.finished_at, after.result, after.cancel_requested) == before

    def test_only_the_creator_or_an_admin_may_cancel(self, db):
        owner = UserFactory(role=Role.researcher)
        job = service.enqueue(db, kind="test.record", params={}, created_by=owner)
        with pytest.raises(Forbidden):
            service.cancel(db, job_id=job.id, actor=UserFactory(role=Role.researcher))
        assert db.get(Job, job.id).status is JobStatus.queued
        admin = UserFactory(role=Role.admin)
        assert service.cancel(db, job_id=job.id, actor=admin).status is JobStatus.cancelled

    def test_a_job_without_creator_is_cancelled_by_admins_only(self, db):
        job = service.enqueue(db, kind="test.record", params={})
        with pytest.raises(Forbidden):
            service.cancel(db, job_id=job.id, actor=UserFactory(role=Role.researcher))
        assert service.cancel(db, job_id=job.id, actor=UserFactory(role=Role.admin)).status is JobStatus.cancelled
