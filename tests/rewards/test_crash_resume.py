"""Acceptance 5: a worker SIGKILLed in the middle of a reward job — the re-run resumes from the job's
last checkpoint and exactly one reward version is registered. Real worker processes, real database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.jobs import service
from app.jobs.models import JobStatus
from app.registry.models import ModelKind, ModelVersion
from tests.jobs.conftest import kill_mid_job_and_resume
from tests.rewards.conftest import TINY, seed_preferences


def test_a_killed_reward_job_resumes_and_registers_exactly_once(
    scratch_db_url, scratch_sessions, tmp_path, tiny_backbone
):
    with scratch_sessions() as db:
        seed_preferences(db, 120)
        params = {**TINY, "backbone": str(tiny_backbone), "epochs": 2, "batch_size": 2, "checkpoint_every": 5}
        job_id = service.enqueue(db, kind="reward", params=params, max_attempts=3).id
        db.commit()
    checkpoint = tmp_path / "var" / "checkpoints" / f"job-{job_id}" / "resume.pt"
    job = kill_mid_job_and_resume(scratch_db_url, tmp_path, scratch_sessions, job_id, checkpoint=checkpoint)

    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 2, "survivor"), job.log_tail[-3000:]
    assert "resumed from the checkpoint at step" in job.log_tail
    assert job.result["resumed_from_step"] > 0
    with scratch_sessions() as db:
        versions = list(db.scalars(select(ModelVersion).where(ModelVersion.kind == ModelKind.reward)))
    assert [v.created_by_job_id for v in versions] == [job_id]
    assert Path(versions[0].path).is_dir() and not checkpoint.parent.exists()
    staged = [p.name for p in Path(versions[0].path).parent.iterdir()]
    assert staged == [versions[0].name]  # no half-written folder left beside it
