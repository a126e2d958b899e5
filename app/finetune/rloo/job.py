"""The ``rloo`` job kind: retrain a policy version with RLOO (or GRPO) against a reward version.

The job is :func:`~app.finetune.ppo.reward_job.run_reward_job`, the steps a ``ppo`` job takes (snapshot
the inputs, load the scorers, train resumably, register ONE ready child policy version keyed by the job id);
only the trainer differs. torch is imported only when the handler runs, in the job process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.finetune.ppo.inputs import PPOInputs
from app.finetune.ppo.reward_job import run_reward_job
from app.finetune.rloo.params import RLOOParams
from app.jobs.context import JobContext
from app.jobs.registry import register

if TYPE_CHECKING:
    from app.training.rloo.trainer import RLOOResult  # the trainer loads torch: imported where the job runs

KIND = "rloo"


@register(KIND, RLOOParams)
def run_rloo(ctx: JobContext[RLOOParams]) -> dict[str, Any]:
    """Train the policy with RLOO against the reward version and register the result once."""
    return run_reward_job(ctx, KIND, "RLOO", _train)


def _train(ctx: JobContext[RLOOParams], inputs: PPOInputs, folder: Path, trainer_kwargs: dict[str, Any]) -> RLOOResult:
    """RLOO's config for the snapshot's policy folder and the trainer's run."""
    from app.training.rloo.trainer import train_rloo

    config = ctx.params.rloo_config(policy=str(inputs.policy_path))
    return train_rloo(inputs.prompts, config, folder, **trainer_kwargs)
