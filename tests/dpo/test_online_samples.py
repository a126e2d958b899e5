"""Online DPO's samples per prompt, with ``max_samples_per_prompt`` set, follow how many prompts make a pair:
twice k after a round in which fewer than a quarter did (a trait the policy rarely shows), half k once half
do, between ``samples_per_prompt`` and the ceiling; the k in force survives a stop and resume. Off (0) by
default: k stays ``samples_per_prompt``."""

from __future__ import annotations

import pytest

from app.training.core.loop import TrainingStopped
from app.training.dpo.config import OnlineDPOConfig
from app.training.dpo.online import next_samples_per_prompt, train_online_dpo
from tests.dpo.test_online_trainer import Recorder, config
from tests.training.test_ppo_trainer import PROMPTS, AnswerWordBonus, tiny_policy, wordlevel_tokenizer


@pytest.mark.parametrize(
    ("k", "share", "expected"),
    [
        (8, 0.0, 16),  # no prompt paired: twice k
        (8, 0.24, 16),
        (16, 0.1, 32),
        (32, 0.1, 32),  # at the ceiling
        (8, 0.25, 8),  # between a quarter and a half: k stays
        (16, 0.49, 16),
        (16, 0.5, 8),  # half paired: half k
        (32, 1.0, 16),
        (8, 1.0, 8),  # never under samples_per_prompt
    ],
)
def test_k_doubles_under_a_quarter_paired_and_halves_from_a_half(k, share, expected):
    assert (
        next_samples_per_prompt(k, share, OnlineDPOConfig(samples_per_prompt=8, max_samples_per_prompt=32)) == expected
    )


@pytest.mark.parametrize("ceiling", [0, 8])  # 0, the default: no ceiling above samples_per_prompt
def test_a_fixed_k_by_default_or_when_the_ceiling_is_k(ceiling):
    fixed = OnlineDPOConfig(samples_per_prompt=8, max_samples_per_prompt=ceiling)
    fixed.validate()
    assert next_samples_per_prompt(8, 0.0, fixed) == next_samples_per_prompt(8, 1.0, fixed) == 8
    assert OnlineDPOConfig().max_samples_per_prompt == 0


def test_a_ceiling_under_k_is_refused_by_name():
    with pytest.raises(ValueError, match="^max_samples_per_prompt: must be 0 or ≥ samples_per_prompt"):
        OnlineDPOConfig(samples_per_prompt=8, max_samples_per_prompt=6).validate()


class TiesEverything:
    """A reward that scores every answer alike: no prompt ever makes a pair. Counts the answers it scored."""

    def __init__(self) -> None:
        self.scored: list[int] = []

    def __call__(self, completions) -> list[float]:
        self.scored.append(len(completions))
        return [0.0] * len(completions)


class StopAfter(Recorder):
    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds

    def should_stop(self) -> bool:
        return len(self.series("pairs")) >= self.rounds


def ties_run(tmp_path, reporter, reward, **overrides):
    tok = wordlevel_tokenizer()
    settings = config(samples_per_prompt=4, max_samples_per_prompt=16, max_kl_per_token=0.0, **overrides)
    return train_online_dpo(
        PROMPTS, settings, tmp_path / "out", reward=reward, policy=tiny_policy(tok), tokenizer=tok, reporter=reporter
    )


def test_rounds_without_pairs_sample_twice_as_many_answers_up_to_the_ceiling(tmp_path):
    reward = TiesEverything()
    result = ties_run(tmp_path, Recorder(), reward, rounds=4)
    assert [round_["samples_per_prompt"] for round_ in result.history] == [4, 8, 16, 16]
    assert [round_["pairs"] for round_ in result.history] == [0, 0, 0, 0]
    assert reward.scored == [8 * 4, 8 * 8, 8 * 16, 8 * 16]  # 8 prompts a round, k answers each


def test_rounds_where_every_prompt_pairs_keep_k(tmp_path):
    tok = wordlevel_tokenizer()
    result = train_online_dpo(
        PROMPTS,
        config(samples_per_prompt=4, max_samples_per_prompt=16, max_kl_per_token=0.0),
        tmp_path / "out",
        reward=AnswerWordBonus(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=Recorder(),
    )
    shares = [round_["pairs"] / 8 for round_ in result.history]
    assert min(shares) >= 0.5, shares  # the answer-word share differs between nearly any two samples
    assert [round_["samples_per_prompt"] for round_ in result.history] == [4, 4, 4]


def test_a_resumed_run_goes_on_with_the_k_it_had_reached(tmp_path):
    with pytest.raises(TrainingStopped):
        ties_run(tmp_path, StopAfter(2), TiesEverything(), rounds=4)
    reward = TiesEverything()
    result = ties_run(tmp_path, Recorder(), reward, rounds=4)
    assert result.resumed_from == 2
    assert [round_["samples_per_prompt"] for round_ in result.history] == [4, 8, 16, 16]
    assert reward.scored == [8 * 16, 8 * 16]  # rounds 3 and 4 only, at the k round 2 left
