"""Scoring (prompt, response) pairs with a saved reward model: the scalar r(x, y).

scorer = RewardScorer("/models/reward-3")
scorer.score([("How do I fix a bike?", "Sure! First …"), …])  # -> [1.73, …]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.training.core.data import Prompt
from app.training.core.scoring import HeadScorer


class RewardScorer(HeadScorer):
    """The scalar reward r(x, y) of a saved reward model."""

    def score(self, pairs: Sequence[tuple[Prompt, str]]) -> list[float]:
        """One reward per (prompt, response), in order."""
        return self.raw_scores(pairs)[:, 0].tolist()


def load_reward_scorer(folder: Path | str, **kwargs: Any) -> RewardScorer:
    """Shorthand for :class:`RewardScorer`; kwargs: device, batch_size, max_length, dtype."""
    return RewardScorer(folder, **kwargs)
