"""The Bradley–Terry reward loss and its companions, as pure tensor functions.

P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l)), so maximum likelihood over judged pairs minimises

    L = −E log σ(r_w − r_l − m)

where the margin m (0 unless configured) asks the model to separate strongly preferred pairs by more.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | float | None = None
) -> torch.Tensor:
    """−mean log σ(r_w − r_l − m). chosen, rejected (and margin, if a tensor): [B] -> scalar."""
    difference = chosen - rejected
    if margin is not None:
        difference = difference - margin
    return -F.logsigmoid(difference).mean()  # logsigmoid: stable where log(sigmoid(x)) underflows


def centering_penalty(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """mean((r_w + r_l)²): pulls the pair's mean reward towards 0, leaving the differences (and so the
    Bradley–Terry likelihood) free. A BT reward is only defined up to a constant; this picks one."""
    return ((chosen + rejected) ** 2).mean()


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs ranked the annotator's way (a tie counts as wrong). [B], [B] -> scalar."""
    return (chosen > rejected).float().mean()


def strength_margins(strengths: Sequence[int], margin: float) -> list[float]:
    """Per-pair margin from the 1–3 strength: 0 for 'slightly better', ``margin`` for 'much better'."""
    return [margin * (s - 1) / 2 for s in strengths]
