"""What every attempt of a training job stands on, whichever trainer it runs.

An attempt may be a retry of one that died at any point, so it reads the same snapshot as the first one
(nothing created after the job itself: :func:`job_cutoff`), resumes the same checkpoint
(:func:`checkpoint_path`), and returns the version an earlier attempt registered rather than train again
(:func:`registered_by`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.context import JobContext
from app.jobs.models import Job
from app.registry.job_inputs import check_name_free
from app.registry.models import ModelVersion

MIN_EXAMPLES = 2  # fewer cannot be split or trained on; the job fails rather than register nonsense


def checkpoint_path(ctx: JobContext[Any]) -> Path:
    """The resumable checkpoint of this job, under the data folder, the same for every attempt."""
    return ctx.settings.data_dir / "checkpoints" / f"job-{ctx.job_id}" / "resume.pt"


def job_cutoff(db: Session, job_id: int) -> datetime | None:
    """When the job was queued: its data snapshot holds nothing created after."""
    return db.scalar(select(Job.created_at).where(Job.id == job_id))


def registered_by(db: Session, job_id: int) -> ModelVersion | None:
    """The version an earlier attempt of this job registered before it died, if any."""
    return db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id))


def free_version_name(db: Session, name: str | None, kind: str, job_id: int) -> str:
    """The job's name for its version (default ``<kind>-job<id>``), failing the job if another job's has it."""
    name = name or f"{kind}-job{job_id}"
    check_name_free(db, name, job_id)
    return name
