"""Acceptance 6: PostgreSQL restarts under an idle and under a busy worker; nothing is lost or doubled.

Restarts the local cluster with ``pg_ctlcluster`` (PostgreSQL backend only), and always leaves it
running: a failed restart is followed by a start, and the test waits until it accepts connections.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from app.db import utcnow
from app.jobs.models import JobStatus
from tests.conftest import postgres_unavailable
from tests.jobs.conftest import add_job, load, runs, wait_finished, wait_for

CLUSTERS = Path("/etc/postgresql")
SLOW = {"job_lease_seconds": 30}  # a restart must not look like a dead worker


def _cluster_command(action: str) -> list[str]:
    version = sorted(p.name for p in CLUSTERS.iterdir())[0]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]


def _accepting(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _wait_accepting(conninfo: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _accepting(conninfo):
        if time.monotonic() > deadline:
            raise AssertionError("PostgreSQL did not accept connections again")
        time.sleep(0.2)


def _drop_dead_pooled_connections() -> None:
    """Pools opened before the restart hold dead connections; fixtures without pre-ping
    (the test database's admin engine) would trip on them at teardown."""
    for obj in gc.get_objects():
        if isinstance(obj, Engine) and obj.dialect.name == "postgresql":
            obj.dispose()


# PostgreSQL only: the test restarts the server (there is no SQLite variant to skip). That ends every other
# test's connections too, so it runs alone (``serial``), after the parallel run of ``make test``.
pytestmark = [pytest.mark.parametrize("backend", ["postgresql"], indirect=True), pytest.mark.serial]


@pytest.fixture()
def restart_postgres(backend: str, db_url: str) -> Iterator[Callable[[], None]]:
    if shutil.which("pg_ctlcluster") is None or not CLUSTERS.is_dir():
        postgres_unavailable("these tests restart a local pg_ctlcluster-managed PostgreSQL")
    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def restart() -> None:
        subprocess.run(_cluster_command("restart"), check=True, capture_output=True, timeout=120)
        _wait_accepting(conninfo)
        _drop_dead_pooled_connections()

    try:
        yield restart
    finally:
        if not _accepting(conninfo):
            subprocess.run(_cluster_command("start"), check=False, capture_output=True, timeout=120)
            _wait_accepting(conninfo)
        _drop_dead_pooled_connections()


def test_an_idle_worker_reconnects_after_a_restart(sessions, worker_procs, restart_postgres, marker_dir):
    proc = worker_procs.start("idle", **SLOW)
    first = add_job(sessions, "test.record", {"marker_dir": str(marker_dir)})
    wait_finished(sessions, first)  # the worker is up and has been polling
    restart_postgres()
    second = add_job(sessions, "test.record", {"marker_dir": str(marker_dir)})
    job = wait_finished(sessions, second)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 1), worker_procs.output("idle")
    assert [line.split()[0] for line in runs(marker_dir)] == [str(first), str(second)]
    assert proc.poll() is None


def test_a_busy_worker_carries_on_after_a_restart(sessions, worker_procs, restart_postgres, marker_dir):
    proc = worker_procs.start("busy", **SLOW)
    job_id = add_job(sessions, "test.record", {"steps": 40, "step_seconds": 0.1, "marker_dir": str(marker_dir)})
    wait_for(lambda: load(sessions, job_id).progress > 0, timeout=60, what="the job to make progress")
    restarted_at = utcnow()
    restart_postgres()
    job = wait_finished(sessions, job_id, timeout=120)
    assert (job.status, job.attempts, job.progress) == (JobStatus.succeeded, 1, 1.0), worker_procs.output("busy")
    assert job.started_at < restarted_at < job.finished_at  # the restart hit the running job
    assert len(runs(marker_dir)) == 1
    assert proc.poll() is None
