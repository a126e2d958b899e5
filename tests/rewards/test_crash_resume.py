"""Acceptance 5: a worker SIGKILLed in the middle of a reward job — the re-run resumes from the job's
last checkpoint and exactly one reward version is registered. Real worker processes, real database."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.db import make_engine, make_sessionmaker
from app.jobs import service
from app.jobs.models import JobStatus
from app.registry.models import ModelKind, ModelVersion
from tests.jobs.conftest import WorkerProcesses, load, wait_finished, wait_for
from tests.rewards.conftest import TINY, seed_preferences


@pytest.fixture()
def scratch_sessions(scratch_db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database of this test's own: worker processes commit to it."""
    engine = make_engine(scratch_db_url)
    migrate.upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_a_killed_reward_job_resumes_and_registers_exactly_once(scratch_db_url, scratch_sessions, tmp_path,
                                                                tiny_backbone):
    with scratch_sessions() as db:
        seed_preferences(db, 120)
        params = {**TINY, "backbone": str(tiny_backbone), "epochs": 2, "batch_size": 2, "checkpoint_every": 5}
        job_id = service.enqueue(db, kind="reward", params=params, max_attempts=3).id
        db.commit()
    checkpoint = tmp_path / "var" / "checkpoints" / f"job-{job_id}" / "resume.pt"
    workers = WorkerProcesses(scratch_db_url, tmp_path)
    try:
        doomed = workers.start("doomed")
        wait_for(checkpoint.exists, timeout=180, what="the first attempt's first checkpoint")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        assert load(scratch_sessions, job_id).status is JobStatus.running  # killed mid-run, not finished
        workers.start("survivor")
        job = wait_finished(scratch_sessions, job_id, timeout=300)
    finally:
        workers.stop_all()

    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 2, "survivor"), job.log_tail[-3000:]
    assert "resumed from the checkpoint at step" in job.log_tail
    assert job.result["resumed_from_step"] > 0
    with scratch_sessions() as db:
        versions = list(db.scalars(select(ModelVersion).where(ModelVersion.kind == ModelKind.reward)))
    assert [v.created_by_job_id for v in versions] == [job_id]
    assert Path(versions[0].path).is_dir() and not checkpoint.parent.exists()
    staged = [p.name for p in Path(versions[0].path).parent.iterdir()]
    assert staged == [versions[0].name]  # no half-written folder left beside it
