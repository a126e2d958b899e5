"""Hyper-parameters of the reward-model job; what it shares with the classifier is ``core.config.TrainConfig``.

Each field carries its help text in ``metadata["help"]``, so the dashboard form, the CLI and the
job's stored parameters all describe a field the same way (see ``config_base.config_help``).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.training.core.config import TrainConfig
from app.training.core.config import help_field as _f  # short, so each field stays one readable line


@dataclass
class RewardConfig(TrainConfig):
    """The reward-model job: Bradley–Terry on (prompt, chosen, rejected) pairs."""

    margin: float = _f(
        0.0,
        "Margin of the strongest preference (strength 3) in −log σ(r_w − r_l − m); a pair of "
        "strength s gets m = margin·(s − 1)/2, so 'slightly better' pairs get none. 0 disables.",
    )
    center_rewards_coefficient: float = _f(
        0.0,
        "Weight of the centring penalty mean((r_w + r_l)²), which keeps "
        "rewards near zero mean without changing their differences. 0 disables.",
    )

    def validate(self) -> None:
        """The shared checks, then this job's own."""
        super().validate()
        if self.margin < 0 or self.center_rewards_coefficient < 0:
            raise ValueError("margin and center_rewards_coefficient must be ≥ 0")
