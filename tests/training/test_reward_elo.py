"""The reward trainer's ``target: elo``: Elo targets worked out by hand, computed from the training split
alone, and a tiny model whose two heads are ranked on the same held-out pairs."""

from __future__ import annotations

import json

import pytest
import torch

import app.training.reward.elo_head as elo_head
from app.training.core.data import PreferenceExample, split_by_prompt
from app.training.core.tiny import tiny_llama
from app.training.reward.config import RewardConfig
from app.training.reward.elo_target import elo_targets
from app.training.reward.scoring import RewardScorer
from app.training.reward.trainer import train_reward_model
from tests.training.test_reward_trainer import config as pairwise_config


def example(prompt: str, chosen: str, rejected: str) -> PreferenceExample:
    return PreferenceExample(prompt=prompt, chosen=chosen, rejected=rejected, prompt_key=prompt)


def test_elo_targets_by_hand() -> None:
    examples = [
        example("p", "x", "y"),  # x–y at 1000–1000: Δ = 16                       → x 1016, y 984
        example("p", "y", "z"),  # y–z at 984–1000: E_y = 0.4769904, Δ = 16.7363068 → y 1000.7363068, z 983.2636932
        example("q", "x", "w"),  # the same text on another prompt is another response: 1016 / 984
        example("q", "w", "w"),  # two equal texts are no game
    ]
    # a target is the response's rating after every game, against its prompt's mean (1000 on both):
    # E = 1 / (1 + 10^((1000 − R)/400)). On p, x: 1 / (1 + 10^(−16/400)) = 1 / (1 + 0.9120108) = 0.5230096;
    # y: 1 / (1 + 10^(−0.7363068/400)) = 0.5010596; z: 1 / (1 + 10^(16.7363068/400)) = 1 / (1 + 1.1011355)
    # = 0.4759331. On q, x: 0.5230096; w: 1 / (1 + 10^(16/400)) = 0.4769904
    targets = elo_targets(examples)
    expected = [(0.5230096, 0.5010596), (0.5010596, 0.4759331), (0.5230096, 0.4769904), (0.4769904, 0.4769904)]
    for got, want in zip(targets, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert elo_targets([example("p", "v", "v")]) == [(0.5, 0.5)]  # never played: the average


def config(**overrides: object) -> RewardConfig:
    """The reward trainer tests' settings, with the Elo target and no strength margin."""
    return pairwise_config(**{"target": "elo", "margin": 0.0, **overrides})


def test_targets_come_from_the_training_split_only(
    tmp_path, smollm2_tokenizer, preferences, reporter_cls, monkeypatch
) -> None:
    seen: list[list[PreferenceExample]] = []

    def spy(examples):
        seen.append(list(examples))
        return elo_targets(examples)

    monkeypatch.setattr(elo_head, "elo_targets", spy)
    examples, settings = preferences(240), config()
    reporter = reporter_cls()
    result = train_reward_model(
        examples,
        settings,
        tmp_path / "rm",
        reporter=reporter,
        backbone=tiny_llama(smollm2_tokenizer),
        tokenizer=smollm2_tokenizer,
    )

    train, validation = split_by_prompt(examples, settings.validation_fraction, settings.seed)
    assert validation and seen == [train, validation]  # the training rows' targets never read a held-out judgement
    metrics = result.metrics
    assert {"val_accuracy", "val_margin", "val_mse", "val_bt_accuracy", "val_bt_loss", "val_bt_margin"} == set(metrics)
    assert metrics["val_accuracy"] >= 0.8 and metrics["val_bt_accuracy"] >= 0.8  # both learn the rule
    names = {name for _, name, _ in reporter.metrics}
    assert {"train_loss", "train_mse", "train_accuracy", "train_bt_loss", "train_bt_accuracy"} <= names

    meta = json.loads((tmp_path / "rm" / "head.json").read_text())
    assert meta["labels"] == ["reward", "bradley_terry"] and meta["kind"] == "reward"
    scorer = RewardScorer(tmp_path / "rm", device="cpu", batch_size=4)
    pairs = [(e.prompt, e.chosen) for e in validation] + [(e.prompt, e.rejected) for e in validation]
    raw = scorer.raw_scores(pairs)
    assert raw.shape == (len(pairs), 2)
    torch.testing.assert_close(torch.tensor(scorer.score(pairs)), raw[:, 0])  # the reward is the Elo head
    # online DPO reads its scores as win probabilities against the prompt's average answer
    assert scorer.target == "elo"
    p = raw[:2, 0].clamp(1e-3, 1 - 1e-3)
    assert scorer.log_odds(raw[:2, 0].tolist()) == pytest.approx(torch.log(p / (1 - p)).tolist(), abs=1e-5)
    n = len(validation)
    accuracy = (raw[:n, 0] > raw[n:, 0]).float().mean().item()
    assert accuracy == pytest.approx(metrics["val_accuracy"], abs=1e-6)
