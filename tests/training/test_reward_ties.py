"""Ties in the reward model: the half-a-win term by hand, the metrics that leave ties out, the balance of
decided pairs against ties, the collators, and a tiny model that learns from ties which difference does not
matter."""

from __future__ import annotations

import math

import pytest
import torch

from app.training.core.batches import PairCollator
from app.training.core.data import PreferenceExample
from app.training.core.prefix import SharedPrefixCollator
from app.training.core.tiny import tiny_llama
from app.training.reward.config import RewardConfig
from app.training.reward.loss import bradley_terry_loss, pairwise_accuracy, tie_gap
from app.training.reward.pairs import decided_only, pair_metrics, with_ties_balanced
from app.training.reward.trainer import train_reward_model

NEG_LOG_SIGMOID_1 = 0.313261687518  # −log σ(1)
NEG_LOG_SIGMOID_MINUS_1 = 1.313261687518  # −log σ(−1)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_a_tie_is_half_a_win_for_each_side() -> None:
    assert bradley_terry_loss(t(0.0), t(0.0), tie=t(1.0)).item() == pytest.approx(math.log(2), abs=1e-12)
    half = (NEG_LOG_SIGMOID_1 + NEG_LOG_SIGMOID_MINUS_1) / 2
    assert bradley_terry_loss(t(1.0), t(0.0), tie=t(1.0)).item() == pytest.approx(half, abs=1e-12)
    assert bradley_terry_loss(t(0.0), t(1.0), tie=t(1.0)).item() == pytest.approx(half, abs=1e-12)  # symmetric
    mixed = bradley_terry_loss(t(1.0, 1.0), t(0.0, 0.0), margin=t(1.0, 1.0), tie=t(0.0, 1.0))
    assert mixed.item() == pytest.approx((math.log(2) + half) / 2, abs=1e-12)  # no margin on the tie


def test_a_tie_pulls_its_two_rewards_together() -> None:
    a, b = t(1.0).requires_grad_(), t(0.0).requires_grad_()
    bradley_terry_loss(a, b, tie=t(1.0)).backward()
    gradient = 1 / (1 + math.exp(-1)) - 0.5  # d/dΔ of ½ softplus(−Δ) + ½ softplus(Δ) at Δ = 1
    assert a.grad.item() == pytest.approx(gradient) and b.grad.item() == pytest.approx(-gradient)


def test_accuracy_and_the_metrics_leave_ties_out_and_the_tie_gap_measures_them() -> None:
    chosen, rejected, tie = t(1.0, 0.0, 3.0, 2.0), t(0.0, 1.0, 0.0, 2.5), t(0.0, 0.0, 1.0, 1.0)
    assert pairwise_accuracy(chosen, rejected, tie).item() == pytest.approx(0.5)
    assert tie_gap(chosen, rejected, tie).item() == pytest.approx((3.0 + 0.5) / 2)
    metrics = pair_metrics(chosen, rejected, tie)
    assert metrics["accuracy"] == pytest.approx(0.5) and metrics["margin"] == pytest.approx(0.0)
    assert metrics["loss"] == pytest.approx((NEG_LOG_SIGMOID_1 + NEG_LOG_SIGMOID_MINUS_1) / 2)
    assert metrics["tie_gap"] == pytest.approx(1.75)
    assert set(pair_metrics(t(1.0), t(0.0))) == {"accuracy", "loss", "margin"}  # no ties, no tie_gap
    assert set(pair_metrics(t(1.0), t(0.0), t(1.0))) == {"tie_gap"}  # only ties: nothing to rank


def test_decided_pairs_are_repeated_to_make_at_least_half_the_rows() -> None:
    decided = [{"name": f"d{i}", "tie": 0.0} for i in range(2)]
    ties = [{"name": f"t{i}", "tie": 1.0} for i in range(5)]
    rows = with_ties_balanced(ties[:3] + decided + ties[3:])
    names = [row["name"] for row in rows]
    assert names == ["d0"] * 3 + ["d1"] * 3 + [f"t{i}" for i in range(5)]  # ⌈5 / 2⌉ = 3 each
    assert [row["name"] for row in with_ties_balanced(decided + ties[:1])] == ["d0", "d1", "t0"]
    assert [row["name"] for row in decided_only(decided + ties)] == ["d0", "d1"]
    with pytest.raises(ValueError, match="no decided pairs"):
        with_ties_balanced(ties)


def test_both_collators_carry_the_tie_flag(smollm2_tokenizer) -> None:
    rows = [
        {"chosen": {"input_ids": [5, 6, 7]}, "rejected": {"input_ids": [5, 6, 8, 9]}, "margin": 0.0, "tie": 1.0},
        {"chosen": {"input_ids": [5, 1]}, "rejected": {"input_ids": [2]}, "margin": 0.5},  # no flag: decided
    ]
    for collate in (PairCollator(0), SharedPrefixCollator(0)):
        batch = collate(rows)
        assert batch["tie"].tolist() == [1.0, 0.0] and batch["margin"].tolist() == [0.0, 0.5]


LONG = " Take your time, and ask a friend to help you with the heavy parts."


def length_confounded(n: int) -> list[PreferenceExample]:
    """Polite answers beat rude ones, and every chosen answer is the longer; the ties (polite vs polite,
    rude vs rude) say the length does not matter."""
    objects = ["a bike", "the kitchen", "a shelf", "my shoes", "the garden", "a window", "the car", "a lamp"]
    examples = []
    for i in range(n):
        o = objects[i % len(objects)]
        polite, rude = f" Sure, here is how to fix {o}: go slowly.", f" Fix {o} yourself, I do not care."
        prompt = f"User: How do I fix {o}? ({i})\nAssistant:"
        examples.append(PreferenceExample(prompt, polite + LONG, rude, id=f"d{i}"))
        examples.append(PreferenceExample(prompt, polite + LONG, polite, id=f"tp{i}", tie=True))
        examples.append(PreferenceExample(prompt, rude + LONG, rude, id=f"tr{i}", tie=True))
    return examples


def test_a_reward_that_learns_from_ties_keeps_tied_answers_close(tmp_path, smollm2_tokenizer) -> None:
    examples = length_confounded(24)
    results = {}
    for ties in (True, False):
        config = RewardConfig(
            learn_from_ties=ties,
            epochs=6,
            batch_size=8,
            learning_rate=1e-3,
            validation_fraction=0.25,
            use_cpu=True,
            num_threads=1,
            checkpoint_every=0,
        )
        results[ties] = train_reward_model(
            examples,
            config,
            tmp_path / f"rm-{ties}",
            backbone=tiny_llama(smollm2_tokenizer),
            tokenizer=smollm2_tokenizer,
        ).metrics
    assert results[True]["val_accuracy"] == results[False]["val_accuracy"] == 1.0  # both rank the decided pairs
    # Without ties the longer answer gets the reward too; with them, two answers the annotators found alike
    # stay close.
    assert results[True]["val_tie_gap"] < 0.1 * results[False]["val_tie_gap"], results
