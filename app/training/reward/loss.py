"""The Bradley–Terry reward loss and its companions, as pure tensor functions.

P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)), so maximum likelihood over judged pairs minimises

    L = −E log σ(r_w − r_l − m)

where the margin m (0 unless configured) asks the model to separate strongly preferred pairs by more.
A tie counts as half a win for each side, as in the Elo ratings and the exports: its term
−½ log σ(Δ) − ½ log σ(−Δ) is smallest at Δ = 0, so a tied pair pulls its two rewards together.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    tie: torch.Tensor | None = None,
) -> torch.Tensor:
    """−mean log σ(r_w − r_l − m), a tied pair's term −½ log σ(Δ) − ½ log σ(−Δ) instead (no margin).
    chosen, rejected (and margin, if a tensor; tie, 1 for a tied pair): [B] -> scalar."""
    difference = chosen - rejected
    shifted = difference if margin is None else difference - margin
    decided = -F.logsigmoid(shifted)  # logsigmoid: stable where log(sigmoid(x)) underflows
    if tie is None:
        return decided.mean()
    tied = -0.5 * (F.logsigmoid(difference) + F.logsigmoid(-difference))
    return torch.where(tie > 0, tied, decided).mean()


def centering_penalty(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """mean((r_w + r_l)²): pulls the pair's mean reward towards 0, leaving the differences (and so the
    Bradley–Terry likelihood) free. A BT reward is only defined up to a constant; this picks one."""
    return ((chosen + rejected) ** 2).mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, tie: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of decided pairs ranked the annotator's way (equal rewards count as wrong; tied pairs, where
    ``tie`` is 1, are left out; 0 when there are none). [B], [B] -> scalar."""
    correct = (chosen > rejected).float()
    if tie is None:
        return correct.mean()
    decided = 1.0 - tie
    return (correct * decided).sum() / decided.sum().clamp(min=1.0)


def tie_gap(chosen: torch.Tensor, rejected: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    """Mean |r_a − r_b| over the tied pairs (0 when there are none): how far apart the reward puts two
    answers the annotators found equally good. [B], [B], [B] -> scalar."""
    return ((chosen - rejected).abs() * tie).sum() / tie.sum().clamp(min=1.0)


def strength_margins(strengths: Sequence[int], margin: float) -> list[float]:
    """Per-pair margin from the 1–3 strength: 0 for 'slightly better', ``margin`` for 'much better'."""
    return [margin * (s - 1) / 2 for s in strengths]
