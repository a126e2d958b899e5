"""The ``rloo`` job kind: retrain a policy version with RLOO (or GRPO) against a reward version.

The job is :func:`~app.finetune.core.rl_job.run_rl_job`, the steps a ``ppo`` job takes (snapshot the
inputs, load the scorers, train resumably, register ONE ready child policy version keyed by the job id);
only the trainer differs. torch is imported only when the handler runs, in the job process.
"""

from __future__ import annotations

from typing import Any

from app.finetune.core.rl_job import run_rl_job
from app.finetune.rloo.params import RLOOParams
from app.jobs.context import JobContext
from app.jobs.registry import register

KIND = "rloo"


@register(KIND, RLOOParams)
def run_rloo(ctx: JobContext[RLOOParams]) -> dict[str, Any]:
    """Train the policy with RLOO against the reward version and register the result once."""
    from app.training.rloo.trainer import train_rloo

    return run_rl_job(ctx, KIND, "RLOO", train_rloo)
