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
These steps are :func:`~app.finetune.ppo.reward_job.run_reward_job`, which the ``rloo`` job shares; only
the trainer is PPO's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.finetune.ppo.inputs import PPOInputs
from app.finetune.ppo.params import PPOParams
from app.finetune.ppo.reward_job import run_reward_job
from app.jobs.context import JobContext
from app.jobs.registry import register

if TYPE_CHECKING:
    from app.training.ppo.trainer import PPOResult  # the trainer loads torch: imported where the job runs

KIND = "ppo"


@register(KIND, PPOParams)
def run_ppo(ctx: JobContext[PPOParams]) -> dict[str, Any]:
    """Train the policy with PPO against the reward version and register the result once."""
    return run_reward_job(ctx, KIND, "PPO", _train)


def _train(ctx: JobContext[PPOParams], inputs: PPOInputs, folder: Path, trainer_kwargs: dict[str, Any]) -> PPOResult:
    """PPO's config (a value model from the reward version's folder when asked for) and the trainer's run."""
    from app.training.ppo.trainer import train_ppo

    value_model = inputs.reward.path if ctx.params.value_model == "reward" else ""
    config = ctx.params.ppo_config(policy=str(inputs.policy_path), value_model=value_model)
    return train_ppo(inputs.prompts, config, folder, **trainer_kwargs)
