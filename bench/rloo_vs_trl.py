"""RLOO throughput and held-out reward: this project's ``train_rloo`` against TRL's ``RLOOTrainer``.

One workload, both trainers in this process, ``--repeats`` fresh runs each, interleaved (the order
alternates per repeat) so a neighbour's load hits both alike; the median run is reported.

**The workload**

* prompts: "How do I {verb} {object}?" (the reward peer's verbs and training objects, drawn with seed 0) as
  one user chat message, rendered by SmolLM2's chat template with its generation prompt: 64 training
  prompts, and 16 held-out prompts on the peer's held-out objects (the prompt token ids of both sides were
  checked equal: TRL's ``apply_chat_template`` and ours, ``encode_prompts``);
* tokenizer: SmolLM2-135M-Instruct's (read once from the GGUF, cached) plus an added ``<|pad|>`` (49153);
* policy: ``app.training.core.tiny.tiny_llama`` (Llama causal LM, hidden 64, 2 layers, tied embeddings,
  seed 0) — the same initial weights for both; LoRA on both (r 16, α 32, dropout 0, q/k/v/o/gate/up/down_proj,
  the init drawn after ``torch.manual_seed(seed)``), the reference = the same model with the adapters off;
* reward: :func:`vowel_share` of the decoded answer (a plain function of the text, which both accept: TRL
  as a ``reward_funcs`` callable on completion strings, ours as a callable on ``Completion`` lists);
* per update: 8 prompts × k = 4 samples (32 answers) of at most 24 tokens, temperature 1 (no top-k/top-p),
  cut at EOS; sequence reward = score − 0.05·Σ_t (log π_old − log π_ref) (k1 KL in the reward, RLOO's), the
  leave-one-out baseline, advantages not normalised, no missing-EOS penalty; one optimizer step per
  update (TRL: ``num_iterations=1``, ``steps_per_generation=1``, 32 completions per device batch; ours:
  ``ppo_epochs=1``, ``num_minibatches=1``), clip ε 0.2 (inactive at π/π_old = 1); 8 updates (one pass over
  the prompts); AdamW lr 1e-3 (weight decay 0), linear decay to 0, no warm-up, max grad norm 1, fp32, no
  gradient checkpointing, dropout off, 1 torch thread.

Differences that remain (each side's own design, not settings): TRL's surrogate takes the ratio of whole
sequences (Σ_t log π) and averages over answers; ours takes per-token ratios and averages over tokens, so
the two gradients weigh answers of different lengths differently. The prompts' order and the sampling
streams differ, so the sampled answers (and the held-out figures) differ by chance, not by method.

**What is timed**: ours, the whole ``train_rloo(...)`` call (it encodes the prompts, builds the adapters,
samples, trains, merges the adapters and writes the policy folder); TRL, the construction of
``RLOOTrainer`` (which wraps the model in the adapters) plus ``trainer.train()`` (no checkpoint saved).
Reported per trainer: answers/s (= episodes/s) of the timed call, steady answers/s after the first update,
answers per CPU-second of the process, and the held-out mean reward: 16 held-out prompts × 4 answers
sampled by this script in the same way for both (HF ``generate``, temperature 1, 24 tokens, seeded), from
the trained policy and from the initial one. The load average is printed before and after each run; the
last line is one JSON record.

**Where the difference comes from** (cProfile of a 3-update TRL run): TRL's three log-prob passes per
update (π_old, π_ref and the training forward with its backward) go through its fused LM head
(``trl.kernels.chunked_logprob``), which without Triton projects every position of the batch (prompt,
answer and padding) onto the 49k-token vocabulary and folds in the entropy statistics: ~85 % of ``train()``;
sampling with ``generate`` takes ~12 %. Ours reads the sampling pass's log π as π_old, projects only the
answer positions in cache-sized vocabulary blocks, and samples with its own KV-cached loop.

    nice .venv/bin/python bench/rloo_vs_trl.py [--repeats 3] [--updates 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from bench import peer_runs  # first: it sets the libraries' quiet, offline environment

# isort: split

import torch

from app.training.core.tiny import tiny_llama
from app.training.rloo.config import RLOOConfig
from app.training.rloo.trainer import train_rloo
from bench.dpo_vs_trl import LORA_TARGETS
from bench.reward_vs_trl import EVAL_OBJECTS, TRAIN_OBJECTS, VERBS

VOWELS = frozenset("aeiouAEIOU")


def vowel_share(text: str) -> float:
    """The reward: the share of the answer's characters that are vowels (0 for an empty answer)."""
    return sum(ch in VOWELS for ch in text) / len(text) if text else 0.0


def make_prompts(n: int, objects: list[str], seed: int) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    return [[{"role": "user", "content": f"How do I {rng.choice(VERBS)} {rng.choice(objects)}?"}] for _ in range(n)]


# ---- the held-out measure, the same for both -------------------------------------------------------------------
@torch.inference_mode()
def held_out_reward(lm: Any, tok: Any, prompts: list, k: int, length: int, seed: int) -> float:
    """Mean reward of k answers per held-out prompt, sampled at temperature 1 from ``lm`` with a fixed seed."""
    was_training = lm.training
    lm.eval()
    texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(seed)
    out = lm.generate(
        **enc,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=length,
        num_return_sequences=k,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    answers = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    lm.train(was_training)
    return statistics.fmean(vowel_share(a) for a in answers)


# ---- the two trainers ----------------------------------------------------------------------------------------------
def run_trl(a: argparse.Namespace, tok: Any, data: dict) -> dict:
    """A fresh RLOOTrainer with LoRA; timed from its construction to the end of ``train()``."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import RLOOConfig as TrlRLOOConfig
    from trl import RLOOTrainer

    def reward(prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        return [vowel_share(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    model = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)
    dataset = Dataset.from_list([{"prompt": p} for p in data["train"]])
    timer = peer_runs.StepTimer()
    with tempfile.TemporaryDirectory(prefix="trl_rloo_") as scratch:
        args = TrlRLOOConfig(
            output_dir=scratch,
            max_steps=a.updates,
            per_device_train_batch_size=a.batch * a.k,  # completions, k per prompt
            num_generations=a.k,
            steps_per_generation=1,
            num_iterations=1,
            max_completion_length=a.length,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=a.beta,
            epsilon=0.2,
            normalize_advantages=False,
            disable_dropout=True,
            **peer_runs.trl_common_args(a.seed, a.lr),
        )
        lora = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM", bias="none"
        )

        trainer, seconds, cpu_seconds = peer_runs.trl_train_timed(
            a.seed,
            lambda: RLOOTrainer(
                model=model,
                reward_funcs=reward,
                args=args,
                train_dataset=dataset,
                processing_class=tok,
                peft_config=lora,
                callbacks=[timer],
            ),
        )
    reward_after = held_out_reward(trainer.model, tok, data["eval"], a.k, a.length, a.seed)
    return {"train_s": seconds, "cpu_s": cpu_seconds, "reward": reward_after, "stamps": timer.stamps}


def run_ours(a: argparse.Namespace, tok: Any, data: dict) -> dict:
    """A fresh ``train_rloo`` call on the same prompts, initial weights and settings."""
    config = RLOOConfig(
        use_lora=True,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        lora_target_modules=",".join(LORA_TARGETS),
        batch_size=a.batch,
        samples_per_prompt=a.k,
        response_length=a.length,
        temperature=1.0,
        missing_eos_penalty=0.0,
        kl_coef=a.beta,
        kl_penalty="reward",
        kl_estimator="k1",
        advantage="rloo",
        updates=a.updates,
        ppo_epochs=1,
        num_minibatches=1,
        clip_range=0.2,
        learning_rate=a.lr,
        weight_decay=0.0,
        max_grad_norm=1.0,
        checkpoint_every=0,
        log_every=1,
        num_threads=a.threads,
        use_cpu=True,
        seed=a.seed,
    )

    def reward(completions: Sequence) -> list[float]:
        return [vowel_share(c.response) for c in completions]

    model = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)
    reporter = peer_runs.ProgressStamps("update ")
    with tempfile.TemporaryDirectory(prefix="rlhf_rloo_") as scratch:
        result, seconds, cpu_seconds = peer_runs.timed(
            lambda: train_rloo(
                data["train"],
                config,
                Path(scratch) / "policy",
                reward=reward,
                policy=model,
                tokenizer=tok,
                reporter=reporter,
            )
        )
    assert result.steps == a.updates, result.steps
    reward_after = held_out_reward(result.model, tok, data["eval"], a.k, a.length, a.seed)
    return {"train_s": seconds, "cpu_s": cpu_seconds, "reward": reward_after, "stamps": reporter.stamps}


# ---- reporting -----------------------------------------------------------------------------------------------------
def summary(runs: list[dict], answers: int, per_update: int) -> dict:
    """The median run (by wall time) of one trainer, plus every run's rate and held-out reward."""
    med = peer_runs.median_run(runs)
    return {
        **peer_runs.rate_figures(runs, answers, "answers", steady=peer_runs.steady_rate(med["stamps"], 1, per_update)),
        "heldout_reward": round(med["reward"], 4),
        "heldout_reward_all": [round(r["reward"], 4) for r in runs],
        "load_all": [r["load"] for r in runs],
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-eval", type=int, default=16)
    p.add_argument("--batch", type=int, default=8, help="prompts per update")
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--length", type=int, default=24, help="most tokens per answer")
    p.add_argument("--updates", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--repeats", type=int, default=3, help="fresh runs per trainer (median reported)")
    p.add_argument("--trainers", default="trl,ours", help="comma-separated: trl, ours")
    return p.parse_args()


def main() -> int:
    a = parse_args()
    torch.set_num_threads(a.threads)
    tok = peer_runs.smollm2_tokenizer("right")
    data = {
        "train": make_prompts(a.n_train, TRAIN_OBJECTS, a.seed),
        "eval": make_prompts(a.n_eval, EVAL_OBJECTS, a.seed + 1),
    }
    initial = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)
    reward_before = held_out_reward(initial, tok, data["eval"], a.k, a.length, a.seed)
    per_update = a.batch * a.k
    answers = a.updates * per_update
    runners = {"trl": run_trl, "ours": run_ours}
    runs, load = peer_runs.loaded_runs(
        a.trainers,
        a.repeats,
        lambda name: runners[name](a, tok, data),
        lambda name, rep, r: (
            f"{r['train_s']:.2f}s, {answers / r['train_s']:.1f} answers/s, "
            f"{answers / r['cpu_s']:.1f} answers/CPU-s, held-out reward {r['reward']:.4f} "
            f"(load {r['load']} → {os.getloadavg()[0]:.2f})"
        ),
        f"; held-out reward of the initial policy {reward_before:.4f}",
    )
    results = {name: summary(rs, answers, per_update) for name, rs in runs.items()}
    record: dict = {"bench": "rloo_vs_trl"}
    for name, r in results.items():
        print(
            f"{name:>4}: {r['answers_per_s']} answers/s (steady {r['steady_answers_per_s']}, per CPU-second "
            f"{r['cpu_answers_per_s']}), held-out reward {r['heldout_reward']:.4f} (initial {reward_before:.4f})"
        )
    if {"trl", "ours"} <= results.keys():
        ours, theirs = results["ours"], results["trl"]
        ratio, steady, cpu = peer_runs.ratios(ours, theirs, "answers")
        record.update(
            {
                "ratio": round(ratio, 3),
                "ratio_steady": round(steady, 3),
                "ratio_per_cpu_s": round(cpu, 3),
                "ours_answers_per_s": ours["answers_per_s"],
                "trl_answers_per_s": theirs["answers_per_s"],
                "ours_heldout_reward": ours["heldout_reward"],
                "trl_heldout_reward": theirs["heldout_reward"],
            }
        )
    print(f"load after: {load['after']}")
    record.update(
        {
            "initial_heldout_reward": round(reward_before, 4),
            "load": load,
            **results,
            "answers": answers,
            "updates": a.updates,
            "prompts_per_update": a.batch,
            "k": a.k,
            "length": a.length,
            "lr": a.lr,
            "beta": a.beta,
            "repeats": a.repeats,
            **peer_runs.versions(torch.get_num_threads()),
        }
    )
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
