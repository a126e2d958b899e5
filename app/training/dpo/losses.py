"""The DPO and IPO losses, as pure tensor functions on sequence log-probabilities.

With the implicit reward r(x, y) = β·(log π_θ(y|x) − log π_ref(y|x)) and h = Δ_θ − Δ_ref, where
Δ = log π(y_w|x) − log π(y_l|x) (each log π summed over the response tokens only):

    sigmoid (DPO)  L = −log σ(β·h − m)                the Bradley–Terry likelihood of the implicit rewards
    ipo            L = (h − (½ + m)/β)²              regresses h onto a finite target, so it never
                                                      drives a deterministic preference to infinity

m is the per-pair margin (0 unless strengths set one), in implicit-reward units in both: m = 0 gives the
textbook forms −log σ(β·h) and (h − 1/(2β))². Shapes: every input is [B], one value per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from app.training.dpo.config import LOSS_TYPES, LossType
from app.training.reward.loss import bradley_terry_loss, pairwise_accuracy


@dataclass
class DPOTerms:
    """The loss and what the curves show of one batch (all scalars; the loss alone carries a graph)."""

    loss: Tensor
    reward_accuracy: Tensor  # share of pairs whose implicit reward ranks chosen above rejected
    chosen_reward: Tensor  # mean β·(log π − log π_ref) of the chosen answers
    rejected_reward: Tensor  # … of the rejected ones
    margin: Tensor  # mean chosen − rejected implicit reward: β·h

    def metrics(self) -> dict[str, Tensor]:
        """Detached, for the reporter (the loop sums them on the device until a report)."""
        return {
            "loss": self.loss.detach(),
            "reward_accuracy": self.reward_accuracy,
            "chosen_reward": self.chosen_reward,
            "rejected_reward": self.rejected_reward,
            "margin": self.margin,
        }


def implicit_rewards(logp: Tensor, ref_logp: Tensor, beta: float) -> Tensor:
    """r = β·(log π_θ − log π_ref), per sequence."""
    return beta * (logp - ref_logp)


def sigmoid_loss(chosen_rewards: Tensor, rejected_rewards: Tensor, margin: Tensor | float = 0.0) -> Tensor:
    """−mean log σ(r_w − r_l − m): the reward model's Bradley–Terry loss, on implicit rewards."""
    return bradley_terry_loss(chosen_rewards, rejected_rewards, margin)


def ipo_loss(chosen_rewards: Tensor, rejected_rewards: Tensor, beta: float, margin: Tensor | float = 0.0) -> Tensor:
    """mean (h − (½ + m)/β)² with h = (r_w − r_l)/β = Δ_θ − Δ_ref."""
    h = (chosen_rewards - rejected_rewards) / beta
    return ((h - (0.5 + margin) / beta) ** 2).mean()


def dpo_terms(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    *,
    beta: float,
    loss_type: LossType = "sigmoid",
    margin: Tensor | float = 0.0,
) -> DPOTerms:
    """The batch's loss of ``loss_type`` and its diagnostics, from the four sequence log-probs of each pair."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type: unknown {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")
    chosen = implicit_rewards(policy_chosen, ref_chosen, beta)  # [B]
    rejected = implicit_rewards(policy_rejected, ref_rejected, beta)  # [B]
    if loss_type == "sigmoid":
        loss = sigmoid_loss(chosen, rejected, margin)
    else:
        loss = ipo_loss(chosen, rejected, beta, margin)
    with torch.no_grad():
        return DPOTerms(
            loss, pairwise_accuracy(chosen, rejected), chosen.mean(), rejected.mean(), (chosen - rejected).mean()
        )
