"""The ``dpo`` and ``online_dpo`` job kinds: retrain a policy version by direct preference optimisation
(torch is imported only when a handler runs, in the job process).

``dpo``: snapshot the judged pairs → train on them with the framework-free trainer. ``online_dpo``: what a
``ppo`` job does around its trainer (snapshot the prompts, resolve the reward and classifier versions, load
the scorers through the process's scorer cache), the trainer running rounds of sample, rank, train. Either
trainer writes a resumable checkpoint to ``<data_dir>/checkpoints/job-<id>/resume.pt`` (every
``checkpoint_every`` steps; online: after every round), merges the adapters at the end and renames the
finished folder into the model store; the job then registers it as ONE ready policy version whose parent is
the trained one, keyed by the job id (:func:`~app.finetune.core.policy_job.run_policy_job`). A crash at any
point is safe to retry: before the rename the re-run resumes from the last checkpoint; after it the trainer
finds its own finished folder (same fingerprint) and only the registration runs; after registering, the
re-run returns the version it already made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.finetune.core.policy_job import run_policy_job
from app.finetune.core.processes import call_trainer
from app.finetune.core.rl_job import run_rl_job
from app.finetune.dpo.params import DPOParams, OnlineDPOParams
from app.jobs.context import JobContext
from app.jobs.registry import register

if TYPE_CHECKING:
    from app.finetune.dpo.inputs import DPOInputs

KIND = "dpo"
ONLINE_KIND = "online_dpo"


@register(KIND, DPOParams)
def run_dpo(ctx: JobContext[DPOParams]) -> dict[str, Any]:
    """Train the policy on the judged pairs and register the result once."""
    from app.finetune.dpo.inputs import read_dpo_inputs
    from app.training.dpo.trainer import train_dpo

    def read(db: Session) -> DPOInputs:
        return read_dpo_inputs(db, ctx.params, ctx.job_id, KIND)

    def start(inputs: DPOInputs) -> dict[str, Any]:
        ctx.reporter.log(
            f"DPO job: {inputs.policy.name} → {inputs.name} on {len(inputs.examples)} judged pairs "
            f"({ctx.params.loss_type}, β {ctx.params.beta})"
        )
        return {}

    def train(inputs: DPOInputs, folder: Path, trainer_kwargs: dict[str, Any]) -> Any:
        config = ctx.params.trainer_config(policy=str(inputs.policy_path))
        return call_trainer(ctx, train_dpo, inputs.examples, config, folder, **trainer_kwargs)

    return run_policy_job(ctx, KIND, read, start, train)


@register(ONLINE_KIND, OnlineDPOParams)
def run_online_dpo(ctx: JobContext[OnlineDPOParams]) -> dict[str, Any]:
    """Rounds of sample → rank with the reward version → DPO on best vs worst; register the result once.

    The job around the trainer is a ``ppo`` job's (:func:`~app.finetune.core.rl_job.run_rl_job`): the same
    inputs, scorers, refusals and one registration; its record counts rounds."""
    from app.training.dpo.online import train_online_dpo

    return run_rl_job(ctx, ONLINE_KIND, "online DPO", train_online_dpo)
