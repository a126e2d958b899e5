"""The ``ppo`` job kind: retrain a policy version with PPO against a reward version.

Imported by every process that queues or runs jobs (the web app too), so it stays light: the
handler imports the trainer (and with it torch) only when it runs, in the job process.
"""

from __future__ import annotations

from typing import Any

from app.jobs.context import JobContext
from app.jobs.registry import register
from app.ppo.params import PPOParams

KIND = "ppo"


@register(KIND, PPOParams)
def ppo(ctx: JobContext[PPOParams]) -> dict[str, Any]:
    """PPO on the chosen prompts; registers the trained policy as a ready child of the old one."""
    from app.ppo.runner import run_ppo

    return run_ppo(ctx)
