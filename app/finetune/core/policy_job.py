"""What a job that trains a new policy version does around its trainer: the refusals, the one registration.

A policy-training job (DPO, online DPO) ends the same way whatever trained it: the trainer's refusals
become the job's outcome (a stop asked for by a cancellation, a folder that holds another run, a setting
the trainer cannot use), and the merged folder the trainer renamed into the model store is registered
ONCE as a ready child of the version it started from, keyed by the job id, in a fenced transaction, so a
re-run after a crash at any point returns the same version. torch is imported only inside the functions,
when the job runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.finetune.core.head_job import checkpoint_path
from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.registry import service as registry
from app.registry.job_inputs import child_serving_config
from app.registry.models import ModelKind, ModelVersion


def registered_by(db: Session, job_id: int) -> ModelVersion | None:
    """The version an earlier attempt of this job registered before it died, if any."""
    return db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id))


@contextmanager
def trainer_refusals() -> Iterator[None]:
    """Run a trainer: its stop is a cancellation; an occupied folder or a refused setting fails the job,
    the message naming the parameter to change (no retry could fix either)."""
    from app.training.core.loop import TrainingStopped

    try:
        yield
    except TrainingStopped:
        raise JobCancelled() from None
    except FileExistsError as exc:  # the folder holds another run's model: never overwrite it
        raise JobFailed(f"name: {exc}; choose another name") from None
    except ValueError as exc:  # e.g. "beta: must be > 0", "safety_head: the classifier has no …"
        raise JobFailed(str(exc)) from None


def describe_child(version: ModelVersion, record_key: str) -> dict[str, Any]:
    """The job's result: the registered version, its parent and metrics, and the run's record (its
    settings left out: they are the job's parameters and the version's config)."""
    record = {key: value for key, value in (version.config or {}).get(record_key, {}).items() if key != "config"}
    return {
        "version_id": version.id,
        "name": version.name,
        "path": version.path,
        "parent_id": version.parent_id,
        "metrics": dict(version.metrics),
        **record,
    }


def register_child_policy(
    ctx: JobContext[Any],
    *,
    parent: ModelVersion,
    name: str,
    folder: Path,
    metrics: dict[str, float],
    record_key: str,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Register ``folder`` as a ready policy version, child of ``parent``, served like it, with ``record``
    under ``config[record_key]``; drop the job's checkpoints and describe the version."""
    try:
        with ctx.transaction() as db:
            version = registry.register(
                db,
                name=name,
                kind=ModelKind.policy,
                path=str(folder.resolve()),
                base_model=parent.base_model or parent.name,
                parent_id=parent.id,
                metrics=dict(metrics),
                config={**child_serving_config(parent, folder), record_key: record},
                job_id=ctx.job_id,
            )
            outcome = describe_child(version, record_key)
    except Conflict as exc:
        raise JobFailed(f"name: {exc.message}") from None
    shutil.rmtree(checkpoint_path(ctx).parent, ignore_errors=True)
    ctx.reporter.progress(1.0, f"registered {name} (parent {parent.name})")
    return outcome
