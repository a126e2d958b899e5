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
These steps are :func:`~app.finetune.core.rl_job.run_rl_job`, which the ``rloo`` and ``online_dpo`` jobs
share; only the trainer and its value model are PPO's.
"""

from __future__ import annotations

from typing import Any

from app.finetune.core.rl_inputs import RLInputs
from app.finetune.core.rl_job import run_rl_job
from app.finetune.ppo.params import PPOParams
from app.jobs.context import JobContext
from app.jobs.registry import register

KIND = "ppo"


def _value_model(params: PPOParams, inputs: RLInputs) -> dict[str, Any]:
    """The config's value model: a folder to initialise it from (the reward version's, when asked for), or
    "" for a value head on the policy."""
    return {"value_model": inputs.reward.path if params.value_model == "reward" else ""}


@register(KIND, PPOParams)
def run_ppo(ctx: JobContext[PPOParams]) -> dict[str, Any]:
    """Train the policy with PPO against the reward version and register the result once."""
    from app.training.ppo.trainer import train_ppo

    return run_rl_job(ctx, KIND, "PPO", train_ppo, _value_model)
