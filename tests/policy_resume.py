"""One crash-and-resume scenario for every policy job (ppo, rloo, online_dpo): queue the job on a ready (not
promoted) policy, SIGKILL its worker once a checkpoint is on disk and the curve points before it are stored,
let a second worker finish it, then check that the run resumed where it stopped and registered one child."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.jobs import service
from app.jobs.models import Job, JobMetric, JobStatus
from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.jobs.conftest import kill_mid_job_and_resume
from tests.ppo.conftest import seed_loop


def metric_steps(sessions, job_id: int, name: str) -> list[int]:
    with sessions() as db:
        return list(db.scalars(select(JobMetric.step).where(JobMetric.job_id == job_id, JobMetric.name == name)))


@dataclass
class Resumed:
    job: Job
    policy_id: int
    checkpoint: Path
    steps: list[int]  # the step of every stored point of the curve the scenario watched


def kill_and_resume_policy_job(
    scratch_db_url, sessions, tmp_path, backbone, reward_folder, *, kind: str, params: dict[str, Any], metric: str
) -> Resumed:
    with sessions() as db:
        # Not promoted, so the workers' periodic pool refill has nothing to generate for.
        policy, _, _ = seed_loop(db, backbone, reward_folder, policy_status=ModelStatus.ready)
        job_id = service.enqueue(db, kind=kind, params={**params, "policy_version_id": policy.id}, max_attempts=3).id
        db.commit()
        policy_id = policy.id
    checkpoint = tmp_path / "var" / "checkpoints" / f"job-{job_id}" / "resume.pt"
    # What the attempt reported up to that checkpoint has reached the database (flushed once a second).
    job = kill_mid_job_and_resume(
        scratch_db_url,
        tmp_path,
        sessions,
        job_id,
        checkpoint=checkpoint,
        ready=lambda: 2 in metric_steps(sessions, job_id, metric),
    )
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.succeeded, 2, "survivor"), job.log_tail[-3000:]
    return Resumed(job, policy_id, checkpoint, metric_steps(sessions, job_id, metric))


def assert_resumed_once(sessions, run: Resumed, *, resumed: int, total: int) -> None:
    """Every step's curve point is there and none up to the checkpoint twice; exactly one child version is
    registered, its folder whole, the checkpoint gone."""
    assert sorted(set(run.steps)) == list(range(1, total + 1))  # every step's curve point is there
    assert all(run.steps.count(step) == 1 for step in range(1, resumed + 1))  # none before the checkpoint twice
    with sessions() as db:
        policies = list(
            db.scalars(select(ModelVersion).where(ModelVersion.kind == ModelKind.policy).order_by(ModelVersion.id))
        )
    job = run.job
    assert [(v.id, v.created_by_job_id) for v in policies] == [
        (run.policy_id, None),
        (job.result["version_id"], job.id),
    ]
    child = policies[1]
    assert child.parent_id == run.policy_id and Path(child.path).is_dir() and not run.checkpoint.parent.exists()
    assert sorted(p.name for p in Path(child.path).parent.iterdir()) == [child.name]  # nothing half-written
