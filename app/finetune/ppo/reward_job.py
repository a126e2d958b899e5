"""What a job that trains a policy against a reward version does around its trainer: the ``rloo`` job's
body (the ``ppo`` job takes the same steps), kept beside the inputs it reads.

Snapshot the inputs (policy, reward and classifier versions, prompts: :func:`~app.finetune.ppo.inputs.read_inputs`)
→ load the scorers through the process's scorer cache, holding no database session → train, the trainer
writing a resumable checkpoint to ``<data_dir>/checkpoints/job-<id>/resume.pt`` every ``checkpoint_every``
updates and renaming the merged policy into the model store → register it ONCE as a ready child of the
trained version (:func:`~app.finetune.core.policy_job.register_child_policy`). A crash at any point is safe
to retry: before the rename the re-run resumes from the last checkpoint; after it the trainer finds its own
finished folder (same fingerprint) and only the registration runs; after registering, the re-run returns
the version it already made. torch is imported only by the trainer, in the job process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.finetune.core.head_job import checkpoint_path
from app.finetune.core.policy_job import describe_child, register_child_policy, registered_by, trainer_refusals
from app.finetune.core.policy_params import PolicyParams
from app.finetune.core.reporter import TrainerReporter
from app.finetune.core.scoring import scorer_of
from app.finetune.ppo.inputs import PPOInputs, read_inputs
from app.jobs.context import JobContext
from app.registry import store
from app.registry.models import ModelKind

# (job context, inputs, output folder, the trainer's keyword arguments: reward, classifier, reporter,
# checkpoint_path) → the trainer's result (a TrainResult: metrics, steps, resumed_from, card).
Train = Callable[[JobContext[Any], PPOInputs, Path, dict[str, Any]], Any]


def run_reward_job(ctx: JobContext[PolicyParams], kind: str, label: str, train: Train) -> dict[str, Any]:
    """The whole job: ``train`` only builds the trainer's config from ``ctx.params`` and calls the trainer."""
    with ctx.sessions() as db:
        existing = registered_by(db, ctx.job_id)
        if existing is not None:  # an earlier attempt registered it, then died before recording the outcome
            return describe_child(existing, kind)
        inputs = read_inputs(db, ctx.params, ctx.job_id, kind)
    # Loading takes seconds; no session is held meanwhile (on SQLite every transaction holds the write lock).
    ctx.reporter.progress(0.0, f"loading {inputs.reward.name} and {inputs.policy.name}")
    scorers = {
        "reward": scorer_of(inputs.reward),
        "classifier": scorer_of(inputs.classifier) if inputs.classifier else None,
    }
    ctx.reporter.log(
        f"{label} job: {inputs.policy.name} → {inputs.name} on {len(inputs.prompts)} prompts, reward "
        f"{inputs.reward.name}" + (f", safety from {inputs.classifier.name}" if inputs.classifier else "")
    )
    folder = store.version_dir(ctx.settings, ModelKind.policy.value, inputs.name)
    with trainer_refusals():
        result = train(
            ctx,
            inputs,
            folder,
            {**scorers, "reporter": TrainerReporter(ctx.reporter), "checkpoint_path": checkpoint_path(ctx)},
        )
    unit = type(result).CARD_UNIT  # "update": the record says "updates" and "resumed_from_update", as the card
    record = {
        "reward_version_id": inputs.reward.id,
        "classifier_version_id": inputs.classifier.id if inputs.classifier else None,
        "prompts": len(inputs.prompts),
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
