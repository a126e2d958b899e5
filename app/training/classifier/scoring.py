"""Scoring (prompt, response) pairs with a saved classifier: a probability per head.

scorer = ClassifierScorer("/models/classifier-1")
scorer.score([(prompt, response)])  # -> [{"quality": 0.91, "safety": 0.99}]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from app.training.core.data import Prompt
from app.training.core.scoring import HeadScorer


class ClassifierScorer(HeadScorer):
    """A saved classifier, loaded once; batched P(label = 1) per head."""

    def probabilities(self, pairs: Sequence[tuple[Prompt, str]]) -> torch.Tensor:
        """P(label = 1) [N, H] in ``self.labels`` order."""
        return torch.sigmoid(self.raw_scores(pairs))

    def score(self, pairs: Sequence[tuple[Prompt, str]]) -> list[dict[str, float]]:
        """One {head: probability} per (prompt, response), in order."""
        probs = self.probabilities(pairs).tolist()
        return [dict(zip(self.labels, row, strict=True)) for row in probs]
