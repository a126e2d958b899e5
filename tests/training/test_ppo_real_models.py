"""The PPO trainer with its defaults on the real default models: SmolLM2-135M-Instruct through LoRA, a
MiniLM reward model and a MiniLM quality/safety classifier (untrained heads: this checks the path, not
what is learnt). One short update, then the merged policy must load and answer a chat prompt."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from app.training.classifier.scoring import ClassifierScorer
from app.training.core.checkpoint import atomic_write_dir
from app.training.core.heads import build_model, save_model
from app.training.ppo.config import PPOConfig
from app.training.ppo.trainer import train_ppo
from app.training.reward.scoring import RewardScorer


def minilm_head(folder: Path, labels: list[str]) -> Path:
    model, tokenizer = build_model("all-MiniLM-L6-v2", labels, seed=0)
    with atomic_write_dir(folder) as tmp:
        save_model(model, tokenizer, tmp, {"kind": "reward", "max_length": 256})
    return folder


@pytest.mark.real_models
def test_default_ppo_on_smollm2_with_a_minilm_reward_and_classifier(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.training.core.convert import convert_default_policy

    policy = convert_default_policy(Path(tempfile.gettempdir()) / "rlhf-smollm2-policy")
    reward = RewardScorer(minilm_head(tmp_path / "rm", ["reward"]), device="cpu")
    classifier = ClassifierScorer(minilm_head(tmp_path / "cls", ["quality", "safety"]), device="cpu")
    prompts = [[{"role": "user", "content": "How do I fix a bike?"}], [{"role": "user", "content": "Say hi."}]]
    config = PPOConfig(
        policy=str(policy), updates=1, batch_size=2, num_minibatches=1, ppo_epochs=1, response_length=8, num_threads=1
    )
    result = train_ppo(prompts, config, tmp_path / "policy", reward=reward, classifier=classifier)

    metrics = result.metrics
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["safety_penalty"] <= config.safety_weight
    assert abs(metrics["kl"]) < 1e-3  # the first batch comes from the reference itself
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    tok = AutoTokenizer.from_pretrained(tmp_path / "policy")
    assert tok.pad_token_id != tok.eos_token_id and tok.chat_template
    inputs = tok.apply_chat_template(prompts[1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
