"""How unsure a reward model is which of two answers wins: what active learning asks humans about first.

Under Bradley–Terry the model's P(A beats B) is σ(r_A − r_B). A judgement teaches the most where that
is near ½: there the model's guess is a coin toss, while a pair it ranks at 0.99 would mostly confirm
it. The priority is the Bernoulli variance scaled to [0, 1], 4·p·(1 − p): 1 at p = ½, 0 at certainty.
Pairs that annotators already disagree on rank above every model-ranked pair (a +1): another
judgement settles a live disagreement, whatever the model thinks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DISAGREEMENT_BONUS = 1.0


def win_probability(score_a: float, score_b: float) -> float:
    """σ(r_A − r_B), computed without overflow for any gap."""
    gap = score_a - score_b
    if gap >= 0:
        return 1.0 / (1.0 + math.exp(-gap))
    e = math.exp(gap)
    return e / (1.0 + e)


def uncertainty(score_a: float, score_b: float, *, disputed: bool = False) -> float:
    """4·p·(1 − p) with p = σ(r_A − r_B), plus :data:`DISAGREEMENT_BONUS` when annotators disagree."""
    p = win_probability(score_a, score_b)
    return 4.0 * p * (1.0 - p) + (DISAGREEMENT_BONUS if disputed else 0.0)


def most_uncertain(scores_a: Sequence[float], scores_b: Sequence[float], count: int) -> list[int]:
    """Indices of the ``count`` pairs with the highest :func:`uncertainty`, highest first (ties: lower
    index first, so a choice is reproducible)."""
    ranked = sorted(range(len(scores_a)), key=lambda i: (-uncertainty(scores_a[i], scores_b[i]), i))
    return ranked[: max(count, 0)]
