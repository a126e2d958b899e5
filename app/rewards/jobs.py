"""The ``reward`` and ``classifier`` job kinds.

Imported by every process that queues or runs jobs (the web app too), so it stays light: the
handlers import the trainers (and with them torch) only when they run, in the job process.
"""

from __future__ import annotations

from typing import Any

from app.jobs.context import JobContext
from app.jobs.registry import register
from app.rewards.params import ClassifierParams, RewardParams

REWARD = "reward"
CLASSIFIER = "classifier"


@register(REWARD, RewardParams)
def reward(ctx: JobContext[RewardParams]) -> dict[str, Any]:
    """Train a Bradley–Terry reward model on the judged pairs and register it as a ``reward`` version."""
    from app.rewards.runner import run_reward

    return run_reward(ctx)


@register(CLASSIFIER, ClassifierParams)
def classifier(ctx: JobContext[ClassifierParams]) -> dict[str, Any]:
    """Train the quality/safety heads on the response labels and register a ``classifier`` version."""
    from app.rewards.runner import run_classifier

    return run_classifier(ctx)
