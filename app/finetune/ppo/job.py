"""The ``ppo`` job kind: retrain a policy version with PPO against a reward version (torch is imported
only when the handler runs, in the job process).

Snapshot the inputs (policy, reward and classifier versions, prompts) → load the scorers through the
process's scorer cache → train with the framework-free trainer, which writes a resumable checkpoint to
``<data_dir>/checkpoints/job-<id>/resume.pt`` every ``checkpoint_every`` updates and the metrics of
every update into job_metrics → the trainer merges the adapters and renames the finished folder into
the model store → register it as a ready policy version whose parent is the trained one, in a fenced
transaction keyed by the job id. A crash at any point is safe to retry: before the rename the re-run
resumes from the last checkpoint; after it the trainer finds its own finished folder (same fingerprint)
and only the registration runs; after registering, the re-run returns the version it already made.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.errors import Conflict
from app.jobs.context import JobContext
from app.jobs.exceptions import JobCancelled, JobFailed
from app.jobs.registry import register
from app.finetune.core.reporter import TrainerReporter
from app.finetune.ppo.inputs import PPOInputs, read_inputs
from app.finetune.ppo.params import PPOParams
from app.registry import service as registry
from app.registry import store
from app.registry.job_inputs import child_serving_config
from app.registry.models import ModelKind, ModelVersion
from app.finetune.core.head_job import checkpoint_path
from app.finetune.core.scoring import scorer_of


KIND = "ppo"


@register(KIND, PPOParams)
def run_ppo(ctx: JobContext[PPOParams]) -> dict[str, Any]:
    """Train the policy with PPO against the reward version and register the result once."""
    with ctx.sessions() as db:
        existing = db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == ctx.job_id))
        if existing is not None:  # an earlier attempt registered it, then died before recording the outcome
            return describe(existing)
        inputs = read_inputs(db, ctx.params, ctx.job_id)
    # Loading takes seconds; no session is held meanwhile (on SQLite every transaction holds the write lock).
    ctx.reporter.progress(0.0, f"loading {inputs.reward.name} and {inputs.policy.name}")
    reward = scorer_of(inputs.reward)
    classifier = scorer_of(inputs.classifier) if inputs.classifier else None
    ctx.reporter.log(f"PPO job: {inputs.policy.name} → {inputs.name} on {len(inputs.prompts)} prompts, reward "
                     f"{inputs.reward.name}" + (f", safety from {inputs.classifier.name}" if inputs.classifier else ""))
    folder = store.version_dir(ctx.settings, ModelKind.policy.value, inputs.name)
    result = _train(ctx, inputs, folder, reward, classifier)
    return register_policy(ctx, inputs, folder, result)


def _train(ctx: JobContext[PPOParams], inputs: PPOInputs, folder: Path, reward: Any, classifier: Any) -> Any:  # noqa: ANN401
    """The trainer's result; its refusals become a failed job that names the parameter at fault."""
    from app.training.ppo.trainer import TrainingStopped, train_ppo

    value_model = inputs.reward.path if ctx.params.value_model == "reward" else ""
    try:
        config = ctx.params.ppo_config(policy=str(inputs.policy_path), value_model=value_model)
        return train_ppo(inputs.prompts, config, folder, reward=reward, classifier=classifier,
                         reporter=TrainerReporter(ctx.reporter), checkpoint_path=checkpoint_path(ctx))
    except TrainingStopped:
        raise JobCancelled() from None
    except FileExistsError as exc:  # the folder holds another run's model: never overwrite it
        raise JobFailed(f"name: {exc}; choose another name") from None
    except ValueError as exc:  # e.g. "value_model: … must be a causal LM", "safety_head: the classifier has no …"
        raise JobFailed(str(exc)) from None


def register_policy(ctx: JobContext[PPOParams], inputs: PPOInputs, folder: Path, result: Any) -> dict[str, Any]:  # noqa: ANN401
    """Register the trained folder as the parent's child (idempotently, per job) and describe it."""
    parent = inputs.policy
    card = {"reward_version_id": inputs.reward.id,
            "classifier_version_id": inputs.classifier.id if inputs.classifier else None,
            "prompts": len(inputs.prompts), "updates": result.updates, "resumed_from_update": result.resumed_from,
            "fingerprint": result.card.get("fingerprint"), "config": result.card.get("config", {})}
    try:
        with ctx.transaction() as db:
            version = registry.register(
                db, name=inputs.name, kind=ModelKind.policy, path=str(folder.resolve()),
                base_model=parent.base_model or parent.name, parent_id=parent.id, metrics=dict(result.metrics),
                config={**child_serving_config(parent, folder), "ppo": card}, job_id=ctx.job_id)
            outcome = describe(version)
    except Conflict as exc:
        raise JobFailed(f"name: {exc.message}") from None
    shutil.rmtree(checkpoint_path(ctx).parent, ignore_errors=True)
    ctx.reporter.progress(1.0, f"registered {inputs.name} (parent {parent.name})")
    return outcome


def describe(version: ModelVersion) -> dict[str, Any]:
    """The job's result: the registered version, its parent, its last update's metrics, how the run went."""
    ppo = (version.config or {}).get("ppo", {})
    return {"version_id": version.id, "name": version.name, "path": version.path, "parent_id": version.parent_id,
            "metrics": dict(version.metrics), "reward_version_id": ppo.get("reward_version_id"),
            "classifier_version_id": ppo.get("classifier_version_id"), "prompts": ppo.get("prompts"),
            "updates": ppo.get("updates"), "resumed_from_update": ppo.get("resumed_from_update", 0)}
