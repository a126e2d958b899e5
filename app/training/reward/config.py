"""Hyper-parameters of the reward-model job; what it shares with the classifier is ``core.config.TrainConfig``.

Each field carries its help text in ``metadata["help"]``, so the dashboard form, the CLI and the
job's stored parameters all describe a field the same way (see ``config_base.config_help``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from app.training.core.config import TrainConfig, require
from app.training.core.config import help_field as _f  # short, so each field stays one readable line

RewardTarget = Literal["pairwise", "elo"]


@dataclass
class RewardConfig(TrainConfig):
    """The reward-model job: Bradley–Terry on (prompt, chosen, rejected) pairs, or regression on Elo."""

    target: RewardTarget = _f(
        "pairwise",
        "What the reward learns. 'pairwise': the Bradley–Terry loss on each judged pair. 'elo': each "
        "response's Elo over the training judgements, normalised per prompt to [0, 1], by regression "
        "(MSE), with a Bradley–Terry head trained beside it on the same pairs so the result compares "
        "the two on the same held-out pairs (val_accuracy vs val_bt_accuracy). The reward is the Elo head's.",
    )

    margin: float = _f(
        0.0,
        "Margin of the strongest preference (strength 3) in −log σ(r_w − r_l − m); a pair of "
        "strength s gets m = margin·(s − 1)/2, so 'slightly better' pairs get none. 0 disables.",
    )
    learn_from_ties: bool = _f(
        True,
        "Train on tied judgements too, each as half a win for both sides: the reward learns which "
        "differences the annotators do not care about, where otherwise it would pick up any difference "
        "between the few decided answers. Decided pairs are repeated to make at least half the training "
        "rows. Off: ties are left out, as before. (The 'elo' target always leaves them out.)",
    )
    center_rewards_coefficient: float = _f(
        0.0,
        "Weight of the centring penalty mean((r_w + r_l)²), which keeps "
        "rewards near zero mean without changing their differences. 0 disables.",
    )

    def validate(self) -> None:
        """The shared checks, then this job's own."""
        super().validate()
        require("target", self.target in get_args(RewardTarget), f"must be one of {get_args(RewardTarget)}")
        if self.margin < 0 or self.center_rewards_coefficient < 0:
            raise ValueError("margin and center_rewards_coefficient must be ≥ 0")
