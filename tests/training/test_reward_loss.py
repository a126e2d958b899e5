"""The Bradley–Terry loss and its helpers against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from app.training.core.heads import last_token_pool, mean_pool
from app.training.reward.loss import bradley_terry_loss, centering_penalty, pairwise_accuracy, strength_margins

NEG_LOG_SIGMOID_1 = 0.313261687518  # −log σ(1) = log(1 + e^−1)
NEG_LOG_SIGMOID_MINUS_1 = 1.313261687518  # −log σ(−1) = 1 + log(1 + e^−1)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_one_pair_is_minus_log_sigmoid_of_the_difference() -> None:
    assert bradley_terry_loss(t(1.0), t(0.0)).item() == pytest.approx(NEG_LOG_SIGMOID_1, abs=1e-12)


def test_batch_is_the_mean_over_pairs() -> None:
    loss = bradley_terry_loss(t(2.0, 0.0), t(1.0, 1.0))  # differences +1 and −1
    assert loss.item() == pytest.approx((NEG_LOG_SIGMOID_1 + NEG_LOG_SIGMOID_MINUS_1) / 2, abs=1e-12)


def test_margin_is_subtracted_from_the_difference() -> None:
    assert bradley_terry_loss(t(1.0), t(0.0), margin=t(1.0)).item() == pytest.approx(math.log(2), abs=1e-12)
    assert bradley_terry_loss(t(3.0), t(0.0), margin=2.0).item() == pytest.approx(NEG_LOG_SIGMOID_1, abs=1e-12)


def test_loss_stays_finite_for_a_badly_wrong_pair() -> None:
    loss = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert loss.item() == pytest.approx(400.0)


def test_gradient_pushes_chosen_up_and_rejected_down() -> None:
    chosen, rejected = t(0.0).requires_grad_(), t(0.0).requires_grad_()
    bradley_terry_loss(chosen, rejected).backward()
    assert chosen.grad.item() == pytest.approx(-0.5) and rejected.grad.item() == pytest.approx(0.5)


def test_centering_penalty_and_accuracy() -> None:
    assert centering_penalty(t(1.0, 2.0), t(-1.0, 0.0)).item() == pytest.approx((0.0 + 4.0) / 2)
    assert pairwise_accuracy(t(1.0, 0.0, 2.0), t(0.0, 0.0, 3.0)).item() == pytest.approx(1 / 3)  # tie is wrong


def test_strength_sets_the_margin() -> None:
    assert strength_margins([1, 2, 3], 1.0) == [0.0, 0.5, 1.0]
    assert strength_margins([3], 0.0) == [0.0]


def test_last_token_pool_reads_the_last_real_token_on_either_side() -> None:
    hidden = torch.arange(2 * 4, dtype=torch.float32).view(2, 4, 1)  # [N=2, T=4, H=1]
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert last_token_pool(hidden, right).flatten().tolist() == [1.0, 7.0]
    assert last_token_pool(hidden, left).flatten().tolist() == [3.0, 7.0]


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])  # [1, 3, 1]
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).item() == pytest.approx(2.0)
