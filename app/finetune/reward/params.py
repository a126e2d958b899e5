"""Parameters of the ``reward`` job, validated when the job is queued."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.bounds import Bool, Float
from app.finetune.core.head_params import TrainParams
from app.finetune.core.params import config_field
from app.training.reward.config import RewardConfig, RewardTarget


class RewardParams(TrainParams):
    """A ``reward`` job: Bradley–Terry on the judged pairs, or regression on each response's Elo."""

    aggregate: Literal["each", "majority"] = Field(
        "each",
        description="With several annotators on a pair: every A/B judgement is an example ('each'), or "
        "the pair counts once for the side that strictly outvotes every other verdict ('majority'). With "
        "export_job_id, the export's own aggregation applies instead.",
    )
    target: RewardTarget = config_field(RewardConfig, "target")
    learn_from_ties: Bool = config_field(RewardConfig, "learn_from_ties")
    margin: Float = config_field(RewardConfig, "margin")  # bounds: SETTING_BOUNDS
    center_rewards_coefficient: Float = config_field(RewardConfig, "center_rewards_coefficient")
