"""Fixtures for job tests that need committed rows and real worker processes.

Workers run in other processes (or threads) with their own connections, so these tests write
through the session-scoped migrated ``engine`` and delete what they made afterwards, instead of
using the rolled-back ``db`` session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

import tests.jobs.handlers  # noqa: F401 - registers the test kinds in this process
from app.auth.models import Role, User
from app.config import Settings
from app.db import make_sessionmaker
from app.jobs import service
from app.jobs.models import Job, JobMetric, JobStatus, PeriodicLease
from app.jobs.worker import run_worker
from app.registry.models import ModelVersion

ROOT = Path(__file__).resolve().parents[2]
# The shortest lease Settings allows and fast beats keep the suite quick.
FAST = {"job_lease_seconds": 5, "job_heartbeat_seconds": 0.5, "worker_poll_seconds": 0.1}
BOOT = """
import json, logging, os, sys
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
from app.config import Settings
from app.jobs.worker import run_worker
settings = Settings(**json.loads(os.environ["TEST_WORKER_SETTINGS"]))
run_worker(settings, worker_id=os.environ["TEST_WORKER_ID"])
"""


@pytest.fixture()
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions that really commit; every job, lease, model and ``jobs-`` user is deleted after."""
    factory = make_sessionmaker(engine)
    yield factory
    with factory() as db, db.begin():
        db.execute(delete(ModelVersion).where(ModelVersion.name.like("test-effect-%")))
        db.execute(delete(JobMetric))
        db.execute(delete(Job))
        db.execute(delete(PeriodicLease))
        db.execute(delete(User).where(User.username.like("jobs-%")))


@pytest.fixture()
def make_user(sessions: sessionmaker[Session]) -> Callable[..., User]:
    def make(role: Role = Role.researcher) -> User:
        with sessions() as db, db.begin():
            user = User(username=f"jobs-{uuid.uuid4().hex[:8]}", password_hash="x", role=role)
            db.add(user)
        return user

    return make


@pytest.fixture()
def worker_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=db_url, **FAST)


@pytest.fixture()
def marker_dir(tmp_path: Path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


def add_job(sessions: sessionmaker[Session], kind: str, params: dict[str, Any] | None = None, **kwargs: Any) -> int:
    with sessions() as db, db.begin():
        return service.enqueue(db, kind=kind, params=params, **kwargs).id


def load(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None
        return job


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll until ``predicate`` is truthy; the timeout only bounds a hung test, it asserts nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_finished(sessions: sessionmaker[Session], job_id: int, *, timeout: float = 60) -> Job:
    return wait_for(
        lambda: (j := load(sessions, job_id)).status.finished and j, timeout=timeout, what=f"job {job_id} to finish"
    )


def runs(marker_dir: Path) -> list[str]:
    path = marker_dir / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def statuses(sessions: sessionmaker[Session]) -> dict[int, JobStatus]:
    with sessions() as db:
        return {row.id: row.status for row in db.execute(select(Job.id, Job.status))}


class WorkerProcesses:
    """Real ``run_worker`` processes, stopped (or reaped) at the end of the test."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, worker_id: str, **overrides: Any) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "RLHF_DATABASE_URL": self.db_url,
            "RLHF_DATA_DIR": str(self.tmp_path / "var"),
            "RLHF_JOB_MODULES": "tests.jobs.handlers",
            "TEST_WORKER_SETTINGS": json.dumps({**FAST, **overrides}),
            "TEST_WORKER_ID": worker_id,
        }
        log = open(self.tmp_path / f"{worker_id}.log", "wb")  # noqa: SIM115 - the process writes it
        proc = subprocess.Popen([sys.executable, "-c", BOOT], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[worker_id] = proc
        return proc

    def output(self, worker_id: str) -> str:
        return (self.tmp_path / f"{worker_id}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill_mid_job_and_resume(
    db_url: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    job_id: int,
    *,
    checkpoint: Path,
    ready: Callable[[], Any] = lambda: True,
    timeout: float = 300,
) -> Job:
    """Acceptance 5's scenario: worker "doomed" runs the job until its first ``checkpoint`` exists (and
    ``ready()``), is SIGKILLed mid-run, and worker "survivor" takes the job over; returns it finished."""
    workers = WorkerProcesses(db_url, tmp_path)
    try:
        doomed = workers.start("doomed")
        wait_for(checkpoint.exists, timeout=180, what="the first attempt's first checkpoint")
        wait_for(ready, timeout=60, what="the first attempt to get far enough")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        assert load(sessions, job_id).status is JobStatus.running  # killed mid-run, not finished
        workers.start("survivor")
        return wait_finished(sessions, job_id, timeout=timeout)
    finally:
        workers.stop_all()


@pytest.fixture()
def worker_procs(db_url: str, tmp_path: Path, sessions: sessionmaker[Session]) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(db_url, tmp_path)
    yield procs
    procs.stop_all()


class ThreadWorker:
    """A worker in a thread of the test process (cheaper than a process; no signal handling)."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.stop = threading.Event()
        self.ran: list[int] = []
        self.thread = threading.Thread(target=self._run, args=(settings, worker_id), daemon=True)
        self.thread.start()

    def _run(self, settings: Settings, worker_id: str) -> None:
        self.ran.append(run_worker(settings, worker_id=worker_id, stop_event=self.stop))

    def join(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker thread did not stop"


@pytest.fixture()
def thread_workers(worker_settings: Settings, sessions: sessionmaker[Session]) -> Iterator[Callable[..., ThreadWorker]]:
    started: list[ThreadWorker] = []

    def start(worker_id: str, **overrides: Any) -> ThreadWorker:
        worker = ThreadWorker(worker_settings.model_copy(update=overrides), worker_id)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.join()
