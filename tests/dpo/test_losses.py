"""The DPO and IPO losses and their diagnostics on hand-computed numbers, and the online pairing rule."""

from __future__ import annotations

import math

import pytest
import torch

from app.training.dpo.losses import dpo_terms, ipo_loss, sigmoid_loss
from app.training.dpo.online import best_and_worst
from app.training.reward.scoring import elo_log_odds

# Pair 1: the policy moved 1 nat towards chosen and 1 away from rejected: h = (−1 − −3) − (−2 − −2) = 2.
# Pair 2: it moved the wrong way: h = (−4 − −2) − (−3 − −3) = −2.
POLICY_CHOSEN, POLICY_REJECTED = torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0])
REF_CHOSEN, REF_REJECTED = torch.tensor([-2.0, -3.0]), torch.tensor([-2.0, -3.0])
BETA = 0.5


def terms(loss_type: str, margin: torch.Tensor | float = 0.0):
    return dpo_terms(
        POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=BETA, loss_type=loss_type, margin=margin
    )


def test_sigmoid_loss_is_minus_log_sigmoid_of_beta_times_the_log_ratio_gap():
    # β·h = ±1: −log σ(1) = log(1 + e^−1) = 0.313262, −log σ(−1) = log(1 + e) = 1.313262.
    assert terms("sigmoid").loss.item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.e)) / 2, abs=1e-6)
    assert terms("sigmoid").loss.item() == pytest.approx(0.813262, abs=1e-6)


def test_ipo_loss_regresses_the_gap_onto_one_over_two_beta():
    # 1/(2β) = 1: (2 − 1)² = 1 and (−2 − 1)² = 9, mean 5.
    assert terms("ipo").loss.item() == pytest.approx(5.0)


def test_a_strength_margin_raises_the_bar_in_implicit_reward_units():
    margin = torch.tensor([0.5, 0.0])
    # sigmoid: −log σ(1 − 0.5) = 0.474077 and −log σ(−1) = 1.313262.
    assert terms("sigmoid", margin).loss.item() == pytest.approx((0.474077 + 1.313262) / 2, abs=1e-6)
    # ipo: target (½ + m)/β = 2 for the first pair, 1 for the second: (2 − 2)² = 0, (−2 − 1)² = 9.
    assert terms("ipo", margin).loss.item() == pytest.approx(4.5)
    assert sigmoid_loss(torch.tensor([1.0]), torch.tensor([0.0]), 1.0).item() == pytest.approx(math.log(2))
    assert ipo_loss(torch.tensor([0.25]), torch.tensor([0.0]), 0.5).item() == pytest.approx(0.5**2)


def test_the_implicit_rewards_accuracy_and_margin():
    out = terms("sigmoid")
    # r = β·(log π − log π_ref): chosen 0.5 and −0.5, rejected −0.5 and 0.5.
    assert out.chosen_reward.item() == pytest.approx(0.0) and out.rejected_reward.item() == pytest.approx(0.0)
    assert out.margin.item() == pytest.approx(0.0)  # +1 and −1
    assert out.reward_accuracy.item() == pytest.approx(0.5)  # one pair of two ranked right
    first = dpo_terms(POLICY_CHOSEN[:1], POLICY_REJECTED[:1], REF_CHOSEN[:1], REF_REJECTED[:1], beta=BETA)
    assert (first.chosen_reward.item(), first.rejected_reward.item(), first.margin.item()) == (0.5, -0.5, 1.0)
    assert not any(v.requires_grad for k, v in out.metrics().items())


def test_the_loss_has_the_gradient_that_raises_chosen_and_lowers_rejected():
    chosen = POLICY_CHOSEN.clone().requires_grad_(True)
    rejected = POLICY_REJECTED.clone().requires_grad_(True)
    for loss_type in ("sigmoid", "ipo"):
        chosen.grad = rejected.grad = None
        dpo_terms(chosen, rejected, REF_CHOSEN, REF_REJECTED, beta=BETA, loss_type=loss_type).loss.backward()
        assert chosen.grad[1] < 0 < rejected.grad[1], loss_type  # descent raises log π(chosen), lowers rejected
    # sigmoid: ∂L/∂logπ_w = −β·σ(−β·h)/B; for pair 1 (β·h = 1): −0.5·σ(−1)/2 = −0.067235.
    chosen.grad = None
    dpo_terms(chosen, rejected, REF_CHOSEN, REF_REJECTED, beta=BETA).loss.backward()
    assert chosen.grad[0].item() == pytest.approx(-0.5 * torch.sigmoid(torch.tensor(-1.0)).item() / 2, abs=1e-6)


def test_an_unknown_loss_type_is_refused():
    with pytest.raises(ValueError, match="loss_type"):
        terms("hinge")


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.1, 0.9, -0.3, 0.4], (1, 2)),
        ([1.0, 1.0, 1.0, 1.0], None),  # a tie between best and worst makes no pair
        ([2.0, -1.0, 2.0, -1.0], (0, 1)),  # equals: the first of each
    ],
)
def test_online_pairs_are_best_versus_worst(scores, expected):
    assert best_and_worst(scores) == expected


@pytest.mark.parametrize(
    ("scores", "min_confidence", "expected"),
    [
        ([0.0, 0.2, 0.1, 0.05], 0.6, None),  # σ(0.2) = 0.55: the reward cannot tell these apart
        ([0.0, 0.2, 0.1, 0.05], 0.5, (1, 0)),  # 0.5 keeps every pair that does not tie
        ([0.0, 1.0, 0.5, -0.2], 0.75, (1, 3)),  # σ(1.2) = 0.77
        ([0.0, 1.0, 0.5, 0.1], 0.75, None),  # σ(1.0) = 0.73
    ],
)
def test_online_pairs_need_the_rewards_confidence(scores, min_confidence, expected):
    assert best_and_worst(scores, min_confidence) == expected


def test_an_elo_rewards_confidence_is_read_on_the_log_odds_scale():
    """An Elo-target reward scores each answer's chance of beating its prompt's average answer: 0.8 against
    0.2 is 4:1 against 1:4, log-odds 2.77 apart (σ = 0.94), not the 0.6 apart the raw scores are (σ = 0.65)."""
    scores = [0.5, 0.8, 0.2, 0.4]
    assert best_and_worst(scores, 0.7) is None
    assert best_and_worst(scores, 0.7, elo_log_odds) == (1, 2)
    assert best_and_worst([0.55, 0.45], 0.55, elo_log_odds) == (0, 1)  # logit .55 − logit .45 = 0.40: σ = 0.60
    assert best_and_worst([0.55, 0.45], 0.65, elo_log_odds) is None
    assert elo_log_odds([1.2, -0.1]) == pytest.approx([6.9068, -6.9068], abs=1e-3)  # an overshooting head is clipped
