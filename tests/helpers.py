"""Small helpers shared by the tests: driving the app over HTTP, and running a job attempt in this
process through the worker's own code path."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import Role, User
from app.config import Settings
from app.db import utcnow
from app.jobs import registry as job_kinds
from app.jobs.child import ChildSpec, run_attempt
from app.jobs.lifecycle import claim_next, requeue_stale
from app.jobs.models import Job, JobStatus
from app.jobs.service import enqueue
from tests.factories import PASSWORD, UserFactory

T = TypeVar("T")
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: Playwright's sync API (the browser tests, which may have run
    earlier in this process, whichever worker it is) can leave an event loop running in this one, where
    ``asyncio.run`` refuses to start another."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the real form; returns the session's CSRF token for later form posts."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/")
    return csrf_from(home.text)


def log_in_as(client: TestClient, username: str, role: Role) -> User:
    """Create ``username`` with ``role`` and log ``client`` in as them; ``client.csrf`` keeps the token
    that the test's later form posts need."""
    user = UserFactory(username=username, role=role)
    client.csrf = login(client, username)  # type: ignore[attr-defined]
    return user


def api_headers(db: Session, role: Role) -> dict[str, str]:
    """The Authorization header of a fresh API token for a new user with ``role``."""
    from app.auth import service as auth_service

    _, raw = auth_service.create_token(db, user=UserFactory(role=role), name="api")
    return {"Authorization": f"Bearer {raw}"}


def run_job(
    db: Session,
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    job_id: int | None = None,
) -> Job:
    """Run one attempt of a job in this process through the worker's own path (``run_attempt``):
    parameters loaded and validated, the handler called, the outcome recorded; returns the job, refreshed.

    Without ``job_id`` a new job of ``kind`` with ``params`` is enqueued; with it, that job (which must be
    queued: enqueued by the app, or re-queued by ``rerun_after_commit``) is the one run. A handler's
    ``JobFailed`` or crash does not raise here: it is recorded on the job (``status``, ``error``)."""
    if job_id is None:
        assert kind is not None, "run_job needs the kind of the job to enqueue"
        job_id = enqueue(db, kind=kind, params=params or {}).id
        db.commit()
    else:
        assert params is None, "a queued job runs with the parameters it was enqueued with"
        queued = db.get(Job, job_id)
        db.refresh(queued)
        assert queued.status is JobStatus.queued, f"job {job_id} is {queued.status}, not queued"
        assert kind in (None, queued.kind), f"job {job_id} is a {queued.kind} job, not {kind}"
        kind = queued.kind
    claim = claim_next(db, worker_id="test-worker", kinds=[kind], lease_seconds=600)
    db.commit()
    assert claim is not None and claim.job_id == job_id, "another queued job of this kind was claimed first"
    spec = ChildSpec(
        claim=claim, module=job_kinds.get_kind(kind).module, database_url="", settings=settings, worker_pid=os.getpid()
    )
    run_attempt(sessions, spec)
    job = db.get(Job, job_id)
    db.refresh(job)
    return job


def rerun_after_commit(db: Session, sessions: sessionmaker[Session], settings: Settings, job: Job) -> Job:
    """Run a finished job again as if its attempt had died after committing its effects but before its
    outcome was recorded: the job is put back as that attempt left it (running, no result, its heartbeat
    older than its lease), the worker's sweep (``requeue_stale``) re-queues it, and the next attempt runs.
    Returns the job after that second attempt."""
    db.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            status=JobStatus.running,
            result=None,
            finished_at=None,
            worker_id=job.worker_id or "test-worker",
            heartbeat_at=utcnow() - timedelta(seconds=job.lease_seconds + 60),
        )
    )
    db.commit()
    assert requeue_stale(db) == [job.id]
    db.commit()
    return run_job(db, sessions, settings, job_id=job.id)
