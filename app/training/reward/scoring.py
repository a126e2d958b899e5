"""Scoring (prompt, response) pairs with a saved reward model: the scalar r(x, y).

scorer = RewardScorer("/models/reward-3")
scorer.score([("How do I fix a bike?", "Sure! First …"), …])  # -> [1.73, …]
scorer.log_odds([0.8, 0.2])  # the same scores on the Bradley–Terry log-odds scale, whatever the target
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.training.core.card import read_card
from app.training.core.data import Prompt
from app.training.core.scoring import HeadScorer

# An Elo target's win probability is clipped this far from 0 and 1 before its log-odds are taken: the
# regression head can overshoot [0, 1], and ±6.9 nats already says "certain" to every threshold a user sets.
_ELO_CLIP = 1e-3


def elo_log_odds(probabilities: Sequence[float]) -> list[float]:
    """An Elo-target reward's scores as Bradley–Terry log-odds. Its target is the answer's chance of beating
    its prompt's average answer, p = 1 / (1 + 10^((mean − Elo)/400)), so logit(p) = (Elo − mean)·ln 10 / 400:
    the difference of two is exactly the log-odds that one answer is preferred to the other."""
    clipped = (min(max(p, _ELO_CLIP), 1 - _ELO_CLIP) for p in probabilities)
    return [math.log(p / (1 - p)) for p in clipped]


class RewardScorer(HeadScorer):
    """The scalar reward r(x, y) of a saved reward model."""

    def score(self, pairs: Sequence[tuple[Prompt, str]]) -> list[float]:
        """One reward per (prompt, response), in order."""
        return self.raw_scores(pairs)[:, 0].tolist()

    @functools.cached_property
    def target(self) -> str:
        """What the model learned ('pairwise' or 'elo'), from its card; a folder without one (a reward model
        trained elsewhere) is read as pairwise, the scale every reward trainer we know of writes."""
        try:
            return str(read_card(self.folder)["config"].get("target", "pairwise"))
        except (OSError, ValueError, KeyError, TypeError):
            return "pairwise"

    def log_odds(self, scores: Sequence[float]) -> list[float]:
        """Scores on the Bradley–Terry log-odds scale, where σ(a − b) is the chance that a is preferred to b:
        what online DPO's ``min_confidence`` reads. A pairwise reward's scores already are such log-odds."""
        return elo_log_odds(scores) if self.target == "elo" else list(scores)


def load_reward_scorer(folder: Path | str, **kwargs: Any) -> RewardScorer:
    """Shorthand for :class:`RewardScorer`; kwargs: device, batch_size, max_length, dtype."""
    return RewardScorer(folder, **kwargs)
