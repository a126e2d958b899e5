"""The ``reward`` job kind: a Bradley–Terry reward model on the judged pairs, registered as a ``reward`` version.

The handler imports the trainer (and with it torch) only when it runs, in the job process; the web
app imports this module to validate and queue jobs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.export.snapshot import ExportSnapshot
from app.finetune.core.dataset import DataFilters, preference_examples
from app.finetune.core.head_job import EXPORT_AGGREGATE, run_training
from app.finetune.reward.params import RewardParams
from app.jobs.context import JobContext
from app.jobs.registry import register
from app.registry.models import ModelKind

KIND = "reward"


def _judged_pairs(db: Session, params: RewardParams, filters: DataFilters, export: ExportSnapshot | None) -> list[Any]:
    """The examples: one per A/B judgement, or per pair by majority (an export's own aggregation wins); the
    ties too when the reward learns from them."""
    aggregate = params.aggregate if export is None else EXPORT_AGGREGATE[export.params.get("aggregation", "every")]
    ties = params.learn_from_ties and params.target == "pairwise"
    return preference_examples(db, filters, aggregate=aggregate, ties=ties)


@register(KIND, RewardParams)
def run_reward(ctx: JobContext[RewardParams]) -> dict[str, Any]:
    """Train and register a reward model on the judged pairs."""
    from app.training.reward.config import RewardConfig
    from app.training.reward.trainer import train_reward_model

    return run_training(ctx, ModelKind.reward, _judged_pairs, train_reward_model, RewardConfig)
