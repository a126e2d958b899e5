"""The ``dpo`` and ``online_dpo`` job kinds: retrain a policy version by direct preference optimisation
(torch is imported only when a handler runs, in the job process).

``dpo``: snapshot the judged pairs → train on them with the framework-free trainer. ``online_dpo``: what a
``ppo`` job does around its trainer (snapshot the prompts, resolve the reward and classifier versions, load
the scorers through the process's scorer cache), the trainer running rounds of sample, rank, train. Either
trainer writes a resumable checkpoint to ``<data_dir>/checkpoints/job-<id>/resume.pt`` (every
``checkpoint_every`` steps; online: after every round), merges the adapters at the end and renames the
finished folder into the model store; the job then registers it as ONE ready policy version whose parent is
the trained one, keyed by the job id. A crash at any point is safe to retry: before the rename the re-run
resumes from the last checkpoint; after it the trainer finds its own finished folder (same fingerprint) and
only the registration runs; after registering, the re-run returns the version it already made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.finetune.core.head_job import checkpoint_path
from app.finetune.core.policy_job import describe_child, register_child_policy, registered_by, trainer_refusals
from app.finetune.core.reporter import TrainerReporter
from app.finetune.dpo.params import DPOParams, OnlineDPOParams
from app.finetune.ppo.inputs import PPOInputs
from app.finetune.ppo.reward_job import run_reward_job
from app.jobs.context import JobContext
from app.jobs.registry import register
from app.registry import store
from app.registry.models import ModelKind

if TYPE_CHECKING:
    from app.training.dpo.online import OnlineDPOResult  # the trainer loads torch: imported where the job runs

KIND = "dpo"
ONLINE_KIND = "online_dpo"


@register(KIND, DPOParams)
def run_dpo(ctx: JobContext[DPOParams]) -> dict[str, Any]:
    """Train the policy on the judged pairs and register the result once."""
    from app.finetune.dpo.inputs import read_dpo_inputs

    with ctx.sessions() as db:
        existing = registered_by(db, ctx.job_id)
        if existing is not None:  # an earlier attempt registered it, then died before recording the outcome
            return describe_child(existing, KIND)
        inputs = read_dpo_inputs(db, ctx.params, ctx.job_id, KIND)
    ctx.reporter.log(
        f"DPO job: {inputs.policy.name} → {inputs.name} on {len(inputs.examples)} judged pairs "
        f"({ctx.params.loss_type}, β {ctx.params.beta})"
    )
    folder = store.version_dir(ctx.settings, ModelKind.policy.value, inputs.name)
    with trainer_refusals():
        from app.training.dpo.trainer import train_dpo

        config = ctx.params.dpo_config(str(inputs.policy_path))
        result = train_dpo(
            inputs.examples,
            config,
            folder,
            reporter=TrainerReporter(ctx.reporter),
            checkpoint_path=checkpoint_path(ctx),
        )
    record = {
        "pairs": len(inputs.examples),
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "fingerprint": result.card.get("fingerprint"),
        "config": result.card.get("config", {}),
    }
    return register_child_policy(
        ctx,
        parent=inputs.policy,
        name=inputs.name,
        folder=folder,
        metrics=result.metrics,
        record_key=KIND,
        record=record,
    )


@register(ONLINE_KIND, OnlineDPOParams)
def run_online_dpo(ctx: JobContext[OnlineDPOParams]) -> dict[str, Any]:
    """Rounds of sample → rank with the reward version → DPO on best vs worst; register the result once.

    The job around the trainer is a ``ppo`` job's (:func:`~app.finetune.ppo.reward_job.run_reward_job`): the same
    inputs, scorers, refusals and one registration; its record counts rounds."""
    return run_reward_job(ctx, ONLINE_KIND, "online DPO", _train_online)  # type: ignore[arg-type] - same job fields


def _train_online(
    ctx: JobContext[OnlineDPOParams], inputs: PPOInputs, folder: Path, trainer_kwargs: dict[str, Any]
) -> OnlineDPOResult:
    from app.training.dpo.online import train_online_dpo

    return train_online_dpo(inputs.prompts, ctx.params.online_config(str(inputs.policy_path)), folder, **trainer_kwargs)
