"""Validation metrics of a binary head: accuracy and AUROC, as pure functions.

AUROC is the Mann–Whitney U statistic scaled to [0, 1]: the probability that a random positive scores
above a random negative, ties counting one half. With average ranks (``scipy.stats.rankdata``),
U = Σ rank(positives) − n₁(n₁ + 1)/2 and AUROC = U / (n₁ n₀).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def auroc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels``; NaN when a class is absent."""
    scores_arr = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores_arr)  # average ranks: ties get half credit
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def binary_accuracy(probabilities: Sequence[float], labels: Sequence[int | bool], threshold: float = 0.5) -> float:
    """Fraction of predictions (probability ≥ threshold) that match the labels; NaN when empty."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.size == 0:
        return math.nan
    return float(((probs >= threshold) == np.asarray(labels, dtype=bool)).mean())
