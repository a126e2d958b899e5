"""A worker SIGKILLed in the middle of an ``online_dpo`` job: the job is re-queued when its lease runs out, the
next worker resumes after the last round it checkpointed (the rounds before it are not run again), and exactly
one policy version is registered. Real worker processes, real database (mirrors tests/ppo/test_crash_resume.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.jobs import service
from app.jobs.models import JobMetric, JobStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.dpo.conftest import TINY_ONLINE, seed_loop
from tests.jobs.conftest import kill_mid_job_and_resume

ROUNDS = 40


def round_steps(sessions, job_id: int) -> list[int]:
    with sessions() as db:
        return list(
            db.scalars(select(JobMetric.step).where(JobMetric.job_id == job_id, JobMetric.name == "score_mean"))
        )


def test_a_killed_online_dpo_job_resumes_after_its_last_round_and_registers_exactly_once(
    scratch_db_url, scratch_sessions, tmp_path, tiny_backbone, scorer_folders
):
    with scratch_sessions() as db:
        # Not promoted, so the workers' periodic pool refill has nothing to generate for.
        policy, _, _ = seed_loop(db, tiny_backbone, scorer_folders["reward"], policy_status=ModelStatus.ready)
        params = {**TINY_ONLINE, "rounds": ROUNDS, "policy_version_id": policy.id}
        job_id = service.enqueue(db, kind="online_dpo", params=params, max_attempts=3).id
        db.commit()
        policy_id = policy.id
    checkpoint = tmp_path / "var" / "checkpoints" / f"job-{job_id}" / "resume.pt"
    # What the attempt reported up to that checkpoint has reached the database (flushed once a second).
    job = kill_mid_job_and_resume(
        scratch_db_url,
        tmp_path,
        scratch_sessions,
        job_id,
        checkpoint=checkpoint,
        ready=lambda: 2 in round_steps(scratch_sessions, job_id),
    )

    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 2, "survivor"), job.log_tail[-3000:]
    resumed = job.result["resumed_from_round"]
    assert resumed >= 1 and f"resumed from the checkpoint after round {resumed}/{ROUNDS}" in job.log_tail
    steps = round_steps(scratch_sessions, job_id)
    assert sorted(set(steps)) == list(range(1, ROUNDS + 1))  # every round's curve point is there
    assert all(steps.count(step) == 1 for step in range(1, resumed + 1))  # and none before the checkpoint ran twice
    assert job.result["rounds"] == ROUNDS
    with scratch_sessions() as db:
        versions = list(
            db.scalars(select(ModelVersion).where(ModelVersion.kind == ModelKind.policy).order_by(ModelVersion.id))
        )
    assert [(v.id, v.created_by_job_id) for v in versions] == [(policy_id, None), (job.result["version_id"], job_id)]
    assert versions[1].parent_id == policy_id and Path(versions[1].path).is_dir() and not checkpoint.parent.exists()
    assert sorted(p.name for p in Path(versions[1].path).parent.iterdir()) == [versions[1].name]  # nothing half-written
