"""Online DPO's KL budget: a round whose samples find the policy further from the starting one than
``max_kl_per_token`` undoes the last update and ends the run, and the last round's update is measured by
one more sampling pass before its policy is saved.

The tiny word-level Llama of PPO's trainer tests, rewarded for answer words, at a learning rate that moves it
far in one round, so the budget decides where the run ends."""

from __future__ import annotations

import torch

from app.training.dpo.config import OnlineDPOConfig
from app.training.dpo.online import train_online_dpo
from tests.training.test_ppo_trainer import PROMPTS, AnswerWordBonus, tiny_policy, wordlevel_tokenizer


class Recorder:
    def __init__(self) -> None:
        self.metrics: list[tuple[int, str, float]] = []
        self.logs: list[str] = []

    def progress(self, fraction, message=""):
        pass

    def metric(self, step, name, value):
        self.metrics.append((step, name, value))

    def log(self, line):
        self.logs.append(line)

    def flush(self):
        pass

    def should_stop(self):
        return False

    def series(self, name: str) -> dict[int, float]:
        return {step: value for step, metric, value in self.metrics if metric == name}


def config(**overrides) -> OnlineDPOConfig:
    values = {
        "rounds": 3,
        "prompts_per_round": 8,
        "samples_per_prompt": 4,
        "response_length": 8,
        "batch_size": 4,
        "learning_rate": 5e-2,
        "temperature": 1.0,
        "min_confidence": 0.5,  # the reward is a share of words in [0, 1], not Bradley–Terry log-odds
        "use_cpu": True,
        "num_threads": 1,
    }
    return OnlineDPOConfig(**{**values, **overrides})


def run(tmp_path, name: str, **overrides):
    tok, reporter = wordlevel_tokenizer(), Recorder()
    result = train_online_dpo(
        PROMPTS,
        config(**overrides),
        tmp_path / name,
        reward=AnswerWordBonus(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=reporter,
    )
    return tok, result, reporter


@torch.no_grad()
def logits(model, tok) -> torch.Tensor:
    return model(torch.tensor([tok(PROMPTS[0])["input_ids"]])).logits


def test_without_a_budget_every_round_trains_and_nothing_is_measured_after_the_last(tmp_path):
    tok, result, reporter = run(tmp_path, "free", max_kl_per_token=0.0)
    kl = reporter.series("kl_per_token")
    assert result.card["rounds"] == 3 and len(result.history) == 3
    assert set(kl) <= {1, 2, 3} and kl.get(1, 0.0) < 1e-4  # round 1 samples the starting policy itself
    assert max(kl.values()) > 0.05, kl  # the learning rate moves the policy: a budget below this must bite
    assert not reporter.series("policy_kl_per_token") and result.card["kl_budget"] == {"max_kl_per_token": 0.0}


def test_a_round_over_the_budget_keeps_the_policy_before_it_and_ends_the_run(tmp_path):
    tok, free, free_reporter = run(tmp_path, "free", max_kl_per_token=0.0)
    moved = {step: value for step, value in free_reporter.series("kl_per_token").items() if value > 0.05}
    first_over = min(moved)  # the measurement (after first_over − 1 rounds of updates) that a budget of 0.05 rejects

    tok, result, reporter = run(tmp_path, "budget", max_kl_per_token=0.05)
    budget = result.card["kl_budget"]
    assert budget["round"] == first_over - 1 and result.card["rounds"] == first_over - 2
    assert budget["kl_per_token"] > 0.05 >= budget["kept_kl_per_token"]
    assert len(result.history) == first_over <= 3  # the run ended at the round that measured it
    assert reporter.series("policy_kl_per_token")[first_over] == budget["kept_kl_per_token"]
    assert any(line.startswith("KL budget:") for line in reporter.logs)
    if first_over == 2:  # the kept policy is the starting one: LoRA's B starts at 0, so merged = base
        assert torch.allclose(logits(result.model, tok), logits(tiny_policy(tok), tok), atol=1e-5)


def test_the_last_rounds_update_is_measured_before_its_policy_is_saved(tmp_path):
    tok, result, reporter = run(tmp_path, "roomy", max_kl_per_token=1e6)
    kl = reporter.series("kl_per_token")
    assert 4 in kl and kl[4] > 0  # the extra pass after round 3 sampled the trained policy
    assert reporter.series("policy_kl_per_token") == {3: kl[4]} and result.history[-1]["policy_kl_per_token"] == kl[4]
    assert result.card["rounds"] == 3 and result.card["kl_budget"] == {"max_kl_per_token": 1e6}
