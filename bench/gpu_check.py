"""GPU check of the trainers: the same reward-model and PPO code that runs on the CPU, on CUDA.

    python bench/gpu_check.py --tokenizer PATH_TO_SMOLLM2_TOKENIZER_FOLDER

Trains (1) a reward model on synthetic learnable preferences with a small Llama and bf16 autocast,
(2) PPO on a tiny policy with an easily learnt reward (a bonus for short answers); prints the
device, the throughputs and whether each learnt, ending with one JSON line. No hub downloads.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from app.training.core.data import PreferenceExample
from app.training.core.default_models import load_smollm2_tokenizer
from app.training.core.tiny import tiny_llama
from app.training.ppo.config import PPOConfig
from app.training.ppo.trainer import train_ppo
from app.training.reward.config import RewardConfig
from app.training.reward.trainer import train_reward_model

WORDS = [
    "apple", "river", "stone", "cloud", "window", "garden", "music", "paper", "silver", "forest", "candle", "ocean",
    "ladder", "mirror",
]  # fmt: skip


def preference_data(n: int, seed: int = 0) -> list[PreferenceExample]:
    """The chosen answer says 'thanks'; the rejected one does not (learnable from the text)."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        prompt = f"Question {i}: tell me about {rng.choice(WORDS)}."
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        examples.append(PreferenceExample(prompt=prompt, chosen=f"{body} thanks", rejected=body, prompt_key=str(i)))
    return examples


def reward_check(tokenizer, out: Path, quick: bool) -> dict:
    backbone = tiny_llama(tokenizer, hidden_size=256, num_layers=4, seed=0)
    config = RewardConfig(
        learning_rate=3e-4,
        epochs=1 if quick else 2,
        batch_size=32,
        max_length=64,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
    )
    data = preference_data(200 if quick else 2000)
    start = time.perf_counter()
    result = train_reward_model(data, config, out / "reward", backbone=backbone, tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    pairs = len(data) * 0.9 * config.epochs
    return {
        "val_accuracy": result.metrics.get("val_accuracy"),
        "val_loss": result.metrics.get("val_loss"),
        "pairs_per_s": round(pairs / seconds, 1),
        "seconds": round(seconds, 1),
    }


class ShortAnswerBonus:
    """Reward = −(response length in tokens) / 10: easy to learn, so the mean score must rise."""

    def __call__(self, completions) -> list[float]:
        return [-len(c.response_ids) / 10.0 for c in completions]


def ppo_check(tokenizer, out: Path, quick: bool) -> dict:
    policy = tiny_llama(tokenizer, hidden_size=128, num_layers=2, seed=1)
    prompts = [[{"role": "user", "content": f"Say something about {w}."}] for w in WORDS] * 4
    config = PPOConfig(
        batch_size=16,
        response_length=24,
        updates=3 if quick else 20,
        learning_rate=3e-4,
        kl_coef=0.02,
        seed=0,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
    )
    start = time.perf_counter()
    result = train_ppo(prompts, config, out / "ppo", reward=ShortAnswerBonus(), policy=policy, tokenizer=tokenizer)
    seconds = time.perf_counter() - start
    scores = [h.get("score", float("nan")) for h in result.history]
    return {
        "first_score": round(sum(scores[:3]) / 3, 3),
        "last_score": round(sum(scores[-3:]) / 3, 3),
        "last_kl": result.metrics.get("kl"),
        "episodes_per_s": round(config.batch_size * config.updates / seconds, 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="a few steps only: a smoke run on the CPU")
    args = ap.parse_args()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; torch {torch.__version__}", flush=True)
    tokenizer = load_smollm2_tokenizer(args.tokenizer)
    report: dict = {"device": device}
    with tempfile.TemporaryDirectory() as tmp:
        for name, check in (("reward", reward_check), ("ppo", ppo_check)):
            try:
                report[name] = check(tokenizer, Path(tmp), args.quick)
            except Exception as exc:
                report[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"{name}: {report[name]}", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
