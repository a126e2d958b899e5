"""Periodic tasks: whichever workers try, one runs each task per interval."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.db import utcnow
from app.jobs import periodic
from app.jobs.models import JobStatus, PeriodicLease
from app.jobs.service import enqueue
from tests.jobs.conftest import statuses, wait_for


def test_a_lease_is_taken_once_per_interval(db):
    now = utcnow()
    assert periodic.take_lease(db, name="t", holder="a", seconds=30, now=now) is True
    assert periodic.take_lease(db, name="t", holder="b", seconds=30, now=now + timedelta(seconds=29)) is False
    assert periodic.take_lease(db, name="t", holder="b", seconds=30, now=now + timedelta(seconds=31)) is True
    assert db.get(PeriodicLease, "t").holder == "b"


def test_concurrent_takers_have_one_winner(sessions):
    now = utcnow()
    barrier = threading.Barrier(6)
    won: list[str] = []

    def contend(holder: str) -> None:
        barrier.wait()
        with sessions() as db, db.begin():
            if periodic.take_lease(db, name="race", holder=holder, seconds=60, now=now):
                won.append(holder)

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


@pytest.fixture()
def counted_task() -> Iterator[list[str]]:
    calls: list[str] = []

    @periodic.periodic("test.enqueue_one", every_seconds=3600)
    def enqueue_one(db, settings) -> None:
        calls.append("ran")
        enqueue(db, kind="test.record", params={"value": len(calls)})

    yield calls
    periodic.unregister("test.enqueue_one")


def test_workers_run_a_periodic_task_once_and_its_job_runs(sessions, thread_workers, counted_task):
    thread_workers("a")
    thread_workers("b")
    wait_for(
        lambda: any(s is JobStatus.succeeded for s in statuses(sessions).values()),
        timeout=60,
        what="the task's job to run",
    )
    time.sleep(1.0)  # both workers keep passing through housekeeping meanwhile
    assert counted_task == ["ran"]
    assert list(statuses(sessions).values()) == [JobStatus.succeeded]


def test_a_failing_task_does_not_stop_the_others(sessions, worker_settings):
    ran: list[str] = []

    @periodic.periodic("test.a_broken", every_seconds=3600)
    def broken(db, settings) -> None:
        raise RuntimeError("broken task")

    @periodic.periodic("test.b_fine", every_seconds=3600)
    def fine(db, settings) -> None:
        ran.append("fine")

    try:
        done = periodic.run_due(sessions, worker_settings, holder="w")  # built-in tasks (pool.refill) may run too
        assert "test.b_fine" in done and "test.a_broken" not in done
    finally:
        periodic.unregister("test.a_broken")
        periodic.unregister("test.b_fine")
    assert ran == ["fine"]
