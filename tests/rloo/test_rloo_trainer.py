"""RLOO's advantages on hand-computed numbers, and the trainer on a tiny model: it learns an easy reward
with the KL to the reference bounded, resumes a stopped run exactly, and refuses what cannot train.

The model and tokenizer are PPO's trainer tests' (a 35-token word-level vocabulary, a 2-layer Llama
whose random distributions are not flat), so a few seconds of CPU show the policy move."""

from __future__ import annotations

import pytest
import torch

from app.training.core.card import default_checkpoint_path
from app.training.rloo.config import RLOOConfig
from app.training.rloo.math import group_normalised, leave_one_out, sequence_rewards
from app.training.rloo.trainer import TrainingStopped, train_rloo
from tests.training.test_ppo_trainer import PROMPTS, tiny_policy, wordlevel_tokenizer

WORD = "sure"


class ContainsWord:
    """Reward +1 when the response contains ``WORD``, else 0."""

    def __init__(self, tokenizer) -> None:
        self.id = tokenizer.convert_tokens_to_ids(WORD)

    def __call__(self, completions) -> list[float]:
        return [float(self.id in c.response_ids) for c in completions]


def small_config(**overrides: object) -> RLOOConfig:
    values = {
        "batch_size": 4,
        "samples_per_prompt": 4,
        "response_length": 8,
        "updates": 4,
        "learning_rate": 1e-2,
        "missing_eos_penalty": 0.0,
        "checkpoint_every": 0,
        "num_threads": 1,
        "use_cpu": True,
    }
    return RLOOConfig(**{**values, **overrides})


class TestAdvantages:
    REWARDS = torch.tensor([1.0, 2.0, 3.0, 6.0, 5.0, 5.0, 5.0, 5.0])  # two prompts, k = 4

    def test_leave_one_out_subtracts_the_mean_of_the_other_three(self) -> None:
        # prompt 1: 1 − (2+3+6)/3, 2 − (1+3+6)/3, 3 − (1+2+6)/3, 6 − (1+2+3)/3; prompt 2: all equal → 0
        expected = torch.tensor([-8 / 3, -4 / 3, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0])
        torch.testing.assert_close(leave_one_out(self.REWARDS, 4), expected)

    def test_grpo_divides_the_centred_rewards_by_the_groups_std(self) -> None:
        std = (14 / 3) ** 0.5  # deviations −2, −1, 0, 3 from the mean 3; Σ² = 14 over k − 1 = 3
        expected = torch.tensor([-2 / std, -1 / std, 0.0, 3 / std, 0.0, 0.0, 0.0, 0.0])
        torch.testing.assert_close(group_normalised(self.REWARDS, 4, eps=0.0).nan_to_num(0.0), expected)
        torch.testing.assert_close(group_normalised(self.REWARDS, 4), expected, atol=1e-4, rtol=1e-4)
        assert group_normalised(self.REWARDS, 4)[4:].abs().max() == 0  # an equal group pushes nowhere

    def test_groups_must_be_whole(self) -> None:
        with pytest.raises(ValueError, match="groups of k = 3"):
            leave_one_out(self.REWARDS, 3)

    def test_the_sequence_reward_charges_the_kl_once_per_response_and_only_in_reward_mode(self) -> None:
        scores, penalties = torch.tensor([1.0, 0.5]), torch.tensor([0.25, 0.0])
        ended = torch.tensor([True, False])
        kl = torch.tensor([[0.5, 1.5, 0.0], [2.0, 0.0, 0.0]])  # 0 on padding
        in_reward = sequence_rewards(scores, penalties, ended, kl, 0.1, missing_eos_penalty=1.0, kl_in_reward=True)
        torch.testing.assert_close(in_reward, torch.tensor([1.0 - 0.25 - 0.1 * 2.0, 0.5 - 1.0 - 0.1 * 2.0]))
        in_loss = sequence_rewards(scores, penalties, ended, kl, 0.1, missing_eos_penalty=1.0, kl_in_reward=False)
        torch.testing.assert_close(in_loss, torch.tensor([0.75, -0.5]))


def test_rloo_raises_an_easily_learnt_reward_while_the_kl_stays_bounded(tmp_path, reporter_cls) -> None:
    tok = wordlevel_tokenizer()
    reporter = reporter_cls()
    config = small_config(updates=12)
    result = train_rloo(
        PROMPTS,
        config,
        tmp_path / "policy",
        reward=ContainsWord(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=reporter,
    )

    scores = [h["score"] for h in result.history]
    kls = [h["kl"] for h in result.history]
    assert len(scores) == result.steps == 12
    assert sum(scores[-3:]) / 3 >= sum(scores[:3]) / 3 + 0.2, scores  # the policy learnt to say the word
    assert abs(kls[0]) < 1e-4  # the first batch is sampled by the reference itself
    assert all(-1e-4 <= kl < 8.0 for kl in kls), kls  # held near π_ref: ≪ 8 tokens × log 35 ≈ 28 nats
    assert all(h["beta"] == config.kl_coef for h in result.history)
    assert all(h["advantage_std"] > 0 for h in result.history[:3])  # the groups disagreed: there was a signal
    reported = {name for _, name, _ in reporter.metrics}
    assert {
        "score",
        "reward",
        "kl",
        "entropy",
        "advantage_std",
        "policy_loss",
        "clip_fraction",
        "beta",
        "learning_rate",
    } <= reported
    assert "value_loss" not in reported and "value_model" not in result.card["config"]  # no critic
    assert reporter.progress_calls[-1] == 1.0
    assert any("12 updates of 4 prompts × 4 samples" in line for line in reporter.logs)
    assert not any(".lora_" in name for name in result.model.state_dict())  # adapters merged away


def test_grpo_with_the_kl_in_the_loss_trains_and_reports_the_loss_kl(tmp_path) -> None:
    tok = wordlevel_tokenizer()
    config = small_config(updates=2, advantage="grpo", kl_penalty="loss", ppo_epochs=1, num_minibatches=1)
    result = train_rloo(
        PROMPTS, config, tmp_path / "policy", reward=ContainsWord(tok), policy=tiny_policy(tok), tokenizer=tok
    )
    assert config.kl_kind == "k3" and len(result.history) == 2
    assert all(h["kl_loss"] >= 0 for h in result.history)  # k3 is never negative
    assert result.history[0]["clip_fraction"] == 0  # one epoch, one step: π/π_old = 1, plain REINFORCE


def test_a_stopped_run_resumes_and_finishes_like_an_uninterrupted_one(tmp_path, reporter_cls) -> None:
    tok = wordlevel_tokenizer()
    config = small_config(updates=4, target_kl=1.0, kl_horizon=16)  # adaptive β: its state must survive too
    straight = train_rloo(
        PROMPTS, config, tmp_path / "straight", reward=ContainsWord(tok), policy=tiny_policy(tok), tokenizer=tok
    )

    with pytest.raises(TrainingStopped) as stopped:
        train_rloo(
            PROMPTS,
            config,
            tmp_path / "resumed",
            reward=ContainsWord(tok),
            policy=tiny_policy(tok),
            tokenizer=tok,
            reporter=reporter_cls(stop_at=2),
        )
    assert stopped.value.step == 2
    checkpoint = default_checkpoint_path(tmp_path / "resumed")
    assert checkpoint.is_file() and not (tmp_path / "resumed").exists()

    reporter = reporter_cls()
    resumed = train_rloo(
        PROMPTS,
        config,
        tmp_path / "resumed",
        reward=ContainsWord(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=reporter,
    )
    assert resumed.resumed_from == 2 and resumed.steps == straight.steps == 4
    assert sorted({step for step, _, _ in reporter.metrics}) == [3, 4]
    for before, after in zip(straight.history, resumed.history, strict=True):
        assert after == pytest.approx(before, rel=1e-4, abs=1e-5)
    assert straight.history[-1]["beta"] != config.kl_coef  # β did adapt
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert not checkpoint.exists()
    again = train_rloo(
        PROMPTS, config, tmp_path / "resumed", reward=ContainsWord(tok), policy=tiny_policy(tok), tokenizer=tok
    )
    assert again.model is None and again.steps == 4 and type(again).__name__ == "RLOOResult"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"samples_per_prompt": 3}, "^samples_per_prompt: must be ≥ 4"),
        ({"advantage": "ppo"}, "^advantage: "),
        ({"kl_penalty": "loss", "kl_estimator": "k1"}, "^kl_estimator: k1's gradient"),
        ({"batch_size": 3, "samples_per_prompt": 5, "num_minibatches": 2}, "^num_minibatches: must divide the 15"),
    ],
)
def test_settings_that_cannot_train_are_refused_naming_the_field(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        small_config(**overrides)
