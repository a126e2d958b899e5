"""PPO throughput: this project's trainer against TRL 1.12's PPOTrainer on the same workload, in one run.

The workload is ``/work/shared/peers/trl_ppo_bench.py``'s:

* tokenizer: SmolLM2-135M-Instruct's (read once from the GGUF, cached) plus an added ``<|pad|>`` (vocab 49153);
* policy: ``LlamaForCausalLM`` hidden 64, intermediate 256, 2 layers, 4 heads, tied embeddings, seed 0;
  reward model: ``LlamaForSequenceClassification(num_labels=1)``, same sizes, seed 1, frozen;
* prompts: "User: How do I {verb} {object}?\\nAssistant:" × 128, seed 0;
* per update 8 prompts, ≤ 24 sampled tokens at temperature 0.7 (no top-k/top-p), cut after the first EOS,
  score − 1.0 without EOS, per-token reward −0.05·k1 KL plus the score at the last token, GAE γ = 1,
  λ = 0.95, whitened advantages, 4 PPO epochs × 1 minibatch, clip 0.2, value clip 0.2, vf_coef 0.1,
  AdamW lr 1e-4 decayed linearly over the 8 updates, no gradient clipping, fp32, 1 thread.

Trainers, each run from scratch in its own child process (so peak memory is its own):

* ``trl``: TRL 1.12.0 ``trl.experimental.ppo.PPOTrainer`` (TRL removed PPO in 1.13; the wheel is fetched
  once with pip into ``~/.cache/trl112``), policy trained fully, reference = frozen copy, value model =
  trainable copy of the reward model (as in TRL's example); timed around ``trainer.train()``.
* ``ours``: ``train_ppo`` with its defaults — LoRA adapters (r 16, α 32, q_proj/v_proj), reference = the
  same weights with adapters disabled, value head on the policy trunk; timed around the whole call, which
  also encodes the prompts, builds the adapters, merges them and writes the new policy folder.
* ``ours_full``: ``train_ppo`` with TRL's algorithmic choices — full fine-tuning against a frozen copy and
  a separate value model initialised from the reward model.

Settings that differ (stated in the output too): ``ours`` trains LoRA adapters and a value head on the
policy's hidden states instead of every weight and a separate value model; both of ours take π_old
from the sampling pass (TRL: from the generation scores, the same thing), mask the value loss exactly on
response tokens (TRL: one token past the end) and draw samples with their own per-response random streams.

Reported per trainer (median of ``--repeats``, runs interleaved): episodes/s (= responses/s) over the
timed call, steady episodes/s after the first update, episodes per CPU-second, and peak RSS (the child's
maximum resident set, and its growth over the resident set just before training). The last line is JSON.

    .venv/bin/python bench/ppo_vs_trl.py [--repeats 3] [--trainers trl,ours,ours_full]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable without installing

from bench import peer_runs  # first: it sets the libraries' quiet, offline environment

# isort: split
from bench.reward_vs_trl import TRAIN_OBJECTS as OBJECTS
from bench.reward_vs_trl import VERBS

TRL_DIR = Path(os.environ.get("TRL112_DIR", Path.home() / ".cache" / "trl112"))

DIFFERENCES = {
    "ours": [
        "LoRA adapters (r 16, alpha 32, q_proj/v_proj) instead of full fine-tuning; reference = adapters "
        "disabled instead of a frozen copy",
        "value head on the policy's hidden states instead of a separate value model copied from the reward model",
    ],
    "ours_full": [],
    "common": [
        "value loss masked on response tokens only (TRL: one position past the end too)",
        "per-response random streams for sampling (TRL: the global generator)",
    ],
}


def make_prompts(n: int, seed: int) -> list[str]:
    """The peer's prompts, draw for draw."""
    rng = random.Random(seed)
    combos = [(v, o) for v in VERBS for o in OBJECTS]
    rng.shuffle(combos)
    return [f"User: How do I {v} {o}?\nAssistant:" for v, o in combos[:n]]


def build_models(tok: Any, a: argparse.Namespace) -> tuple[Any, Any]:
    """The peer's tiny policy (tied embeddings, seed ``a.seed``) and reward model (seed ``a.seed + 1``)."""
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(a.seed)
    policy = LlamaForCausalLM(peer_runs.tiny_llama_config(tok, a.hidden, a.layers, tie_word_embeddings=True))
    policy.generation_config.pad_token_id = tok.pad_token_id
    torch.manual_seed(a.seed + 1)
    return policy, LlamaForSequenceClassification(peer_runs.tiny_llama_config(tok, a.hidden, a.layers, num_labels=1))


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def run_trl(a: argparse.Namespace, tok, prompts: list[str]) -> dict:
    import copy

    sys.path.insert(0, str(ensure_trl112()))
    import trl
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig as TrlPPOConfig
    from trl.experimental.ppo import PPOTrainer

    assert trl.__version__ == "1.12.0", trl.__file__

    class Stamps(peer_runs.StepTimer):
        def __init__(self) -> None:
            super().__init__()
            self.scores: list[float] = []
            self.kl: list[float] = []

        def on_log(self, args, state, control, logs=None, **kw) -> None:
            if logs and "objective/scores" in logs:
                self.scores.append(float(logs["objective/scores"]))
                self.kl.append(float(logs["objective/kl"]))

    policy, reward_model = build_models(tok, a)
    ds = Dataset.from_dict({"input_ids": [tok(p)["input_ids"] for p in prompts]})
    args = TrlPPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_ppo_"),
        per_device_train_batch_size=a.batch,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=a.ppo_epochs,
        total_episodes=a.updates * a.batch,
        local_rollout_forward_batch_size=a.batch,
        response_length=a.response_length,
        temperature=0.7,
        stop_token="eos",
        missing_eos_penalty=1.0,
        kl_coef=0.05,
        kl_estimator="k1",
        cliprange=0.2,
        vf_coef=0.1,
        cliprange_value=0.2,
        gamma=1.0,
        lam=0.95,
        whiten_rewards=False,
        learning_rate=a.lr,
        lr_scheduler_type="linear",
        warmup_steps=0,
        num_sample_generations=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=a.seed,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
    )
    stamps = Stamps()
    trainer = PPOTrainer(
        args=args,
        processing_class=tok,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        value_model=copy.deepcopy(reward_model),
        train_dataset=ds,
        eval_dataset=ds.select(range(a.batch)),
        callbacks=[stamps],
    )
    return measured(trainer.train, stamps.stamps, stamps.scores, stamps.kl)


def ensure_trl112() -> Path:
    """An unpacked TRL 1.12.0 wheel (the last with PPO), fetched once with pip."""
    if not (TRL_DIR / "trl" / "experimental" / "ppo").is_dir():
        wheels = TRL_DIR.with_name(TRL_DIR.name + "-wheels")
        whl = wheels / "trl-1.12.0-py3-none-any.whl"
        if not whl.exists():
            subprocess.check_call(
                [sys.executable, "-m", "pip", "download", "--no-deps", "trl==1.12.0", "-d", str(wheels)]
            )
        subprocess.check_call([sys.executable, "-m", "zipfile", "-e", str(whl), str(TRL_DIR)])
    return TRL_DIR


class Stamps(peer_runs.ProgressStamps):
    """A reporter that timestamps every update and keeps the scores (less the missing-EOS penalty, as TRL
    reports them) and the KL."""

    def __init__(self) -> None:
        super().__init__("update ")
        self.scores: list[float] = []
        self.kl: list[float] = []
        self.raw: dict[str, float] = {}

    def metric(self, step: int, name: str, value: float) -> None:
        self.raw[name] = value
        if name == "kl":
            self.kl.append(value)
        elif name == "eos_fraction":
            self.scores.append(self.raw["score"] - 1.0 * (1.0 - value))


def rm_reward(reward_model: Any, pad_id: int) -> Callable[[list], list[float]]:
    """The reward model's score of prompt + kept response at its last token, as TRL computes it."""
    import torch

    @torch.no_grad()
    def score(completions) -> list[float]:
        rows = [c.prompt_ids + c.response_ids for c in completions]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
        hidden = reward_model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [N, L, H]
        last = mask.sum(1) - 1
        return reward_model.score(hidden[torch.arange(len(rows)), last]).squeeze(-1).tolist()

    return score


def run_ours(a: argparse.Namespace, tok, prompts: list[str], full: bool) -> dict:
    import copy

    from app.training.ppo.config import PPOConfig
    from app.training.ppo.trainer import train_ppo

    policy, reward_model = build_models(tok, a)
    reward_model.eval().requires_grad_(False)
    config = PPOConfig(
        batch_size=a.batch,
        response_length=a.response_length,
        temperature=0.7,
        updates=a.updates,
        ppo_epochs=a.ppo_epochs,
        num_minibatches=1,
        learning_rate=a.lr,
        kl_coef=0.05,
        missing_eos_penalty=1.0,
        max_grad_norm=0.0,
        max_prompt_length=512,
        seed=a.seed,
        checkpoint_every=0,
        num_threads=a.threads,
        use_cpu=True,
        use_lora=not full,
    )
    stamps, out = Stamps(), Path(tempfile.mkdtemp(prefix="ours_ppo_")) / "policy"
    value_model = copy.deepcopy(reward_model).requires_grad_(True) if full else None

    def train() -> None:
        train_ppo(
            prompts,
            config,
            out,
            reward=rm_reward(reward_model, tok.pad_token_id),
            policy=policy,
            tokenizer=tok,
            value_model=value_model,
            reporter=stamps,
        )

    return measured(train, stamps.stamps, stamps.scores, stamps.kl)


def measured(train: Callable[[], Any], stamps: list[float], scores: list[float], kl: list[float]) -> dict:
    """Time ``train()`` and read the child's peak memory; with the updates' timestamps, scores and KL."""
    rss_before = rss_kib()
    _, wall, cpu = peer_runs.timed(train)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "steady_updates_per_s": steady,
        "peak_rss_mib": peak / 1024,
        "rss_growth_mib": (peak - rss_before) / 1024,
        "scores": [round(s, 4) for s in scores],
        "kl": [round(k, 4) for k in kl],
    }


def child(a: argparse.Namespace) -> None:
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    tok, prompts = peer_runs.smollm2_tokenizer("left"), make_prompts(a.n_prompts, a.seed)
    if a.child == "trl":
        record = run_trl(a, tok, prompts)
    else:
        record = run_ours(a, tok, prompts, full=a.child == "ours_full")
    print("RESULT " + json.dumps(record), flush=True)


def spawn(name: str, a: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def summary(runs: list[dict], a: argparse.Namespace) -> dict:
    med = peer_runs.median_run(runs, "wall_s")
    steady = med["steady_updates_per_s"]
    return {
        **peer_runs.rate_figures(
            runs,
            a.updates * a.batch,
            "episodes",
            steady=steady * a.batch if steady else None,
            wall_key="wall_s",
            cpu_key="episodes_per_cpu_s",
            rate_digits=3,
            wall_digits=2,
        ),
        "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
        "rss_growth_mib": round(max(r["rss_growth_mib"] for r in runs), 1),
        "scores": med["scores"],
        "kl": med["kl"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--response-length", type=int, default=24)
    p.add_argument("--ppo-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--n-prompts", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--trainers", default="trl,ours,ours_full")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a)
        return 0
    load_before = peer_runs.load_triple()
    print(f"load before: {load_before}", flush=True)
    runs = peer_runs.interleaved(
        a.trainers.split(","),
        a.repeats,
        lambda name: spawn(name, a),
        lambda name, rep, r: (
            f"{r['wall_s']:.2f}s, {a.updates * a.batch / r['wall_s']:.2f} episodes/s, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB (load {r['load']})"
        ),
        alternate=False,
    )
    load = {"before": load_before, "after": peer_runs.load_triple()}
    print(f"load after: {load['after']}")
    report({name: summary(rs, a) for name, rs in runs.items()}, a, load)
    return 0


def report(results: dict[str, dict], a: argparse.Namespace, load: dict[str, list[float]]) -> None:
    base = results.get("trl")
    record = {
        "bench": "ppo_vs_trl",
        **peer_runs.versions(a.threads, trl_version="1.12.0"),
        "updates": a.updates,
        "batch": a.batch,
        "response_length": a.response_length,
        "ppo_epochs": a.ppo_epochs,
        "repeats": a.repeats,
        "differences": DIFFERENCES,
        "load": load,
        **results,
    }
    for name, r in results.items():
        print(
            f"{name:>9}: {r['episodes_per_s']} episodes/s (steady {r['steady_episodes_per_s']}, per CPU-second "
            f"{r['episodes_per_cpu_s']}), peak RSS {r['peak_rss_mib']} MiB (+{r['rss_growth_mib']} MiB in training)"
        )
        if base and name != "trl":
            ratio = r["episodes_per_s"] / base["episodes_per_s"]
            cpu = r["episodes_per_cpu_s"] / base["episodes_per_cpu_s"]
            record[f"ratio_{name}"], record[f"ratio_cpu_{name}"] = round(ratio, 3), round(cpu, 3)
            print(f"           ratio {name}/trl: {ratio:.2f}x episodes/s, {cpu:.2f}x per CPU-second")
    for name in ("ours", "ours_full"):
        if name in results:
            print(f"settings that differ from TRL in {name}: " + "; ".join(DIFFERENCES[name] + DIFFERENCES["common"]))
    print(json.dumps(record))


if __name__ == "__main__":
    sys.exit(main())
