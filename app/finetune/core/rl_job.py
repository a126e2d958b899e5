"""What a job that trains a policy against a reward version does around its trainer: the ``ppo``, ``rloo``
and ``online_dpo`` jobs' body, all but the trainer.

Snapshot the inputs (policy, reward and classifier versions, prompts:
:func:`~app.finetune.core.rl_inputs.read_rl_inputs`) → load the scorers through the process's scorer cache,
holding no database session → train, the trainer writing a resumable checkpoint to
``<data_dir>/checkpoints/job-<id>/resume.pt`` every ``checkpoint_every`` updates and renaming the merged
policy into the model store → register it ONCE as a ready child of the trained version. These are
:func:`~app.finetune.core.policy_job.run_policy_job`'s steps, so a crash at any point is safe to retry:
before the rename the re-run resumes from the last checkpoint; after it the trainer finds its own finished
folder (same fingerprint) and only the registration runs; after registering, the re-run returns the version
it already made. torch is imported only by the trainer, in the job process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.finetune.core.policy_job import run_policy_job
from app.finetune.core.processes import call_trainer
from app.finetune.core.rl_inputs import RLInputs, read_rl_inputs
from app.finetune.core.scoring import scorer_recipe
from app.jobs.context import JobContext

# (prompts, config, output folder, *, reward, classifier, reporter, checkpoint_path) → the trainer's
# result (a TrainResult: metrics, steps, resumed_from, card): train_ppo, train_rloo, train_online_dpo.
Trainer = Callable[..., Any]
# (the job's parameters, the inputs) → what the trainer's config takes besides the policy folder.
Resolve = Callable[[Any, RLInputs], dict[str, Any]]


def run_rl_job(
    ctx: JobContext[Any], kind: str, label: str, trainer: Trainer, resolve: Resolve | None = None
) -> dict[str, Any]:
    """The whole job; ``ctx.params.trainer_config(policy=…, **resolve(params, inputs))`` is the trainer's
    config and ``label`` names the method in the job's log."""

    def read(db: Session) -> RLInputs:
        return read_rl_inputs(db, ctx.params, ctx.job_id, kind)

    def start(inputs: RLInputs) -> dict[str, Any]:
        # Loading takes seconds; no session is held meanwhile (on SQLite every transaction holds the write lock).
        # The scorers are recipes: loaded here, or by each training process on its own device.
        ctx.reporter.progress(0.0, f"loading {inputs.reward.name} and {inputs.policy.name}")
        scorers = {
            "reward": scorer_recipe(inputs.reward),
            "classifier": scorer_recipe(inputs.classifier) if inputs.classifier else None,
        }
        ctx.reporter.log(
            f"{label} job: {inputs.policy.name} → {inputs.name} on {len(inputs.prompts)} prompts, reward "
            f"{inputs.reward.name}" + (f", safety from {inputs.classifier.name}" if inputs.classifier else "")
        )
        return scorers

    def train(inputs: RLInputs, folder: Path, trainer_kwargs: dict[str, Any]) -> Any:
        resolved = resolve(ctx.params, inputs) if resolve else {}
        config = ctx.params.trainer_config(policy=str(inputs.policy_path), **resolved)
        return call_trainer(ctx, trainer, inputs.prompts, config, folder, **trainer_kwargs)

    return run_policy_job(ctx, kind, read, start, train)
