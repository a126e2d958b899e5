"""The offline DPO trainer: it raises the chosen-over-rejected log-ratio of its training pairs (both losses),
encodes a chat prompt exactly as the policy sees it when generating, and resumes after a stop.

The learning tests use PPO's trainer tests' word-level tokenizer and tiny Llama (hidden 32, 35 tokens), so a
run takes about a second; the encoding test uses the real SmolLM2 tokenizer and its chat template."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
import torch

from app.training.core.card import default_checkpoint_path, read_card
from app.training.core.data import PreferenceExample
from app.training.dpo.config import DPOConfig
from app.training.dpo.data import encode_pairs
from app.training.dpo.trainer import TrainingStopped, train_dpo
from tests.training.test_ppo_trainer import PROMPTS, tiny_policy, wordlevel_tokenizer

CHOSEN, REJECTED = "sure first then done", "no maybe no"


def pairs(n: int = 12) -> list[PreferenceExample]:
    return [
        PreferenceExample(prompt, CHOSEN, REJECTED, strength=1 + i % 3, id=i) for i, prompt in enumerate(PROMPTS[:n])
    ]


def config(**overrides) -> DPOConfig:
    values = {
        "epochs": 3,
        "batch_size": 4,
        "learning_rate": 1e-2,
        "validation_fraction": 0.0,
        "checkpoint_every": 0,
        "use_cpu": True,
        "num_threads": 1,
        "lora_target_modules": "",
    }
    return DPOConfig(**{**values, **overrides})


@torch.no_grad()
def log_ratio(model, tok, example: PreferenceExample) -> float:
    """log π(chosen | prompt) − log π(rejected | prompt), each summed over the answer's tokens and EOS, by a
    plain forward of the unpadded sequence (independent of the trainer's batching)."""
    prompt = tok(example.prompt)["input_ids"]

    def logp(answer: str) -> float:
        response = [*tok(answer, add_special_tokens=False)["input_ids"], tok.eos_token_id]
        logits = model(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1]  # predicting the answer
        return torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(response)[:, None]).sum().item()

    return logp(example.chosen) - logp(example.rejected)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_raises_the_chosen_over_rejected_log_ratio_of_its_training_pairs(tmp_path, loss_type):
    tok, examples = wordlevel_tokenizer(), pairs()
    policy = tiny_policy(tok)
    start = copy.deepcopy(policy)
    result = train_dpo(
        examples, config(loss_type=loss_type, strength_margin=0.5), tmp_path / "policy", policy=policy, tokenizer=tok
    )

    before = [log_ratio(start, tok, ex) for ex in examples]
    after = [log_ratio(result.model, tok, ex) for ex in examples]
    gains = [a - b for a, b in zip(after, before, strict=True)]
    assert all(gain > 0.5 for gain in gains), (loss_type, gains)
    assert sum(gains) / len(gains) > 2.0, (loss_type, gains)  # nats: the policy now prefers what the annotators did
    assert result.steps == 9 and result.metrics["train_pairs"] == 12
    card = read_card(tmp_path / "policy")
    assert card["kind"] == "dpo" and card["config"]["loss_type"] == loss_type and card["steps"] == 9


def test_a_held_out_prompt_measures_the_implicit_reward_accuracy(tmp_path):
    tok = wordlevel_tokenizer()
    result = train_dpo(
        pairs(16), config(validation_fraction=0.25), tmp_path / "policy", policy=tiny_policy(tok), tokenizer=tok
    )
    assert result.metrics["validation_pairs"] >= 1 and result.metrics["train_pairs"] <= 15
    assert result.metrics["val_reward_accuracy"] == 1.0 and result.metrics["val_margin"] > 0  # the rule carries over
    assert result.metrics["val_chosen_reward"] > result.metrics["val_rejected_reward"]


class StopAt:
    """A reporter that asks to stop once the given step has been reported."""

    def __init__(self, step: int | None = None) -> None:
        self.stop_step, self.step, self.logs, self.metrics = step, 0, [], []

    def progress(self, frac, msg): ...
    def flush(self): ...

    def metric(self, step, name, value):
        self.step = step
        self.metrics.append((step, name))

    def log(self, line):
        self.logs.append(line)

    def should_stop(self):
        return self.stop_step is not None and self.step >= self.stop_step


def test_a_stopped_run_resumes_from_its_checkpoint(tmp_path):
    tok, examples, output = wordlevel_tokenizer(), pairs(), tmp_path / "policy"
    with pytest.raises(TrainingStopped):
        train_dpo(examples, config(), output, policy=tiny_policy(tok), tokenizer=tok, reporter=StopAt(2))
    assert default_checkpoint_path(output).is_file() and not output.exists()

    reporter = StopAt()
    result = train_dpo(examples, config(), output, policy=tiny_policy(tok), tokenizer=tok, reporter=reporter)
    assert (result.resumed_from, result.steps) == (2, 9)
    assert "resumed from the checkpoint at step 2/9" in reporter.logs
    assert sorted({step for step, name in reporter.metrics if name == "train_loss"}) == list(range(3, 10))
    assert not default_checkpoint_path(output).exists()
    again = train_dpo(examples, config(), output, policy=tiny_policy(tok), tokenizer=tok)  # the finished run's card
    assert again.model is None and again.steps == 9 and again.card["fingerprint"] == result.card["fingerprint"]


def test_a_chat_prompt_is_encoded_as_the_policy_sees_it_when_generating():
    from app.training.core.default_models import load_smollm2_tokenizer

    tok = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    messages = [{"role": "user", "content": "How do I fix a bike?"}]
    [row] = encode_pairs(
        tok,
        [PreferenceExample(messages, "Slowly.", "No.", strength=3)],
        max_prompt_length=256,
        max_response_length=64,
        strength_margin=1.0,
    )
    generation_prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert row["prompt"] == tok(generation_prompt, add_special_tokens=False)["input_ids"]
    assert row["chosen"] == [*tok("Slowly.", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    assert tok.decode(row["rejected"]) == "No.<|im_end|>" and row["margin"] == 1.0  # strength 3 gets the full margin
