"""What a job that trains a new policy version does around its trainer: the refusals, the one registration.

A policy-training job (DPO, online DPO, PPO, RLOO) runs one path whatever trains it
(:func:`run_policy_job`): return the version an earlier attempt registered, if any → read the attempt's
inputs in one session → start the run holding no session (log it, load what the trainer takes besides its
data) → train, the trainer's refusals becoming the job's outcome (a stop asked for by a cancellation, a
folder that holds another run, a setting the trainer cannot use) → register the merged folder the trainer
renamed into the model store ONCE as a ready child of the version it started from, keyed by the job id, in
a fenced transaction, so a re-run after a crash at any point returns the same version. torch is imported
only inside the functions, when the job runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from app.errors import Conflict
from app.finetune.core.attempt import checkpoint_path, registered_by
from app.finetune.core.reporter import TrainerReporter
from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.registry import service as registry
from app.registry import store
from app.registry.models import ModelKind, ModelVersion
from app.registry.serving import child_serving_config


class PolicyInputs(Protocol):
    """What a policy job reads before it trains: the new version's name, the policy it starts from."""

    name: str
    policy: ModelVersion
    policy_path: Path

    def record(self) -> dict[str, Any]:
        """What the new version records of the inputs (versions used, how much data)."""
        ...


InputsT = TypeVar("InputsT", bound=PolicyInputs)


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


def register_child(
    db: Session,
    job_id: int,
    *,
    parent: ModelVersion,
    name: str,
    folder: Path,
    metrics: dict[str, float],
    config: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register ``folder`` as a ready policy version made by the job, child of ``parent`` and served like it
    (``config`` added to the serving config). Idempotent per job; a name another version has is a Conflict."""
    return registry.register(
        db,
        name=name,
        kind=ModelKind.policy,
        path=str(folder.resolve()),
        base_model=parent.base_model or parent.name,
        parent_id=parent.id,
        metrics=dict(metrics),
        config={**child_serving_config(parent, folder, name), **(config or {})},
        job_id=job_id,
    )


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
            version = register_child(
                db, ctx.job_id, parent=parent, name=name, folder=folder, metrics=metrics, config={record_key: record}
            )
            outcome = describe_child(version, record_key)
    except Conflict as exc:
        raise JobFailed(f"name: {exc.message}") from None
    shutil.rmtree(checkpoint_path(ctx).parent, ignore_errors=True)
    ctx.reporter.progress(1.0, f"registered {name} (parent {parent.name})")
    return outcome


def run_policy_job(
    ctx: JobContext[Any],
    kind: str,
    read: Callable[[Session], InputsT],
    start: Callable[[InputsT], dict[str, Any]],
    train: Callable[[InputsT, Path, dict[str, Any]], Any],
) -> dict[str, Any]:
    """The whole job. ``read`` the inputs in one session; ``start`` the run with no session held (log it,
    load what the trainer takes besides its data: its keyword arguments); ``train`` calls the trainer with
    the inputs, the output folder and those arguments (the reporter and the checkpoint path added). The
    version records ``inputs.record()``, the steps (in the result's unit), the fingerprint and the config
    under ``config[kind]``."""
    with ctx.sessions() as db:
        existing = registered_by(db, ctx.job_id)
        if existing is not None:  # an earlier attempt registered it, then died before recording the outcome
            return describe_child(existing, kind)
        inputs = read(db)
    trainer_kwargs = start(inputs)
    folder = store.version_dir(ctx.settings, ModelKind.policy.value, inputs.name)
    with trainer_refusals():
        result = train(
            inputs,
            folder,
            {**trainer_kwargs, "reporter": TrainerReporter(ctx.reporter), "checkpoint_path": checkpoint_path(ctx)},
        )
    unit = type(result).CARD_UNIT  # "update": the record says "updates" and "resumed_from_update", as the card
    record = {
        **inputs.record(),
        f"{unit}s": result.steps,
        f"resumed_from_{unit}": result.resumed_from,
        "fingerprint": result.card.get("fingerprint"),
        "config": result.card.get("config", {}),
    }
    return register_child_policy(
        ctx,
        parent=inputs.policy,
        name=inputs.name,
        folder=folder,
        metrics=result.metrics,
        record_key=kind,
        record=record,
    )
