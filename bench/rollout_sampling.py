"""The training sampler's speed: one online DPO round's sampling on SmolLM2, ours against the naive way.

Online DPO and RLOO sample k answers to each prompt from the policy being trained (``sample_batch``,
``app/training/ppo/rollout.py``). The workload is one default online DPO round: 16 of the pool's starter
prompts × k = 8 answers × at most 48 tokens, temperature 0.7, SmolLM2-135M-Instruct (the converted
default policy) with the job's LoRA adapters, one random stream per answer, in this process.

Both sides run the same decoding loop, in the same process, interleaved (``--repeats``, the order
alternating, median reported); they differ in the four things this bench is about:

* ours: each distinct prompt is prefilled once and its KV cache indexed for its k rows
  (``_prefill``); the token is drawn by a two-level inverse CDF (block masses, then one block); each step's
  keys and values are written into room the cache reserved (``app.generation.kv_cache``); the LoRA
  adapters are merged into the weights while sampling (``core.lora.adapters_merged``);
* naive (what the trainer did before): every row prefilled on its own, one float64 cumulative sum over
  each row's whole 49k-entry vocabulary per step, transformers' ``DynamicCache`` (the whole cache
  concatenated anew each step), the adapters computed apart.

They draw from the same distributions with the same random streams; the last bits of the logits differ
(merged weights, a strided cache), so a draw at a token boundary can differ and the bench reports the share
of answers drawn token for token the same: tokens/s still compare like with like.
The last line is one JSON record: ``ratio`` = ours / naive tokens per second.

Run::

    .venv/bin/python bench/rollout_sampling.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from transformers import DynamicCache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.training.core.convert import convert_default_policy
from app.training.dpo.config import OnlineDPOConfig
from app.training.dpo.policy import build_policy
from app.training.ppo import rollout
from app.training.ppo.rollout import encode_prompts, row_generators, sample_batch
from app.versions.bootstrap import STARTER_FILE
from bench.peer_runs import load_now

CHECKPOINT = Path(tempfile.gettempdir()) / "rlhf-smollm2-policy"


def whole_vocabulary_draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """The former draw: one float64 cumulative sum over every row's whole vocabulary per step."""
    u = torch.cat([torch.rand(1, generator=g, device=probs.device, dtype=torch.float64) for g in generators])
    cdf = probs.cumsum(-1, dtype=torch.float64)
    token = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    return token.clamp(max=probs.shape[-1] - 1)


def growing_cache(config: object, reserve: int) -> DynamicCache:
    """transformers' own cache, which concatenates every layer's keys and values each step."""
    return DynamicCache(config=config)


@contextmanager
def naive():
    """Every row prefilled on its own, the whole-vocabulary draw, the cache copied each step, adapters unmerged."""
    with (
        mock.patch.object(rollout, "distinct_rows", lambda rows: (list(range(len(rows))),) * 2),
        mock.patch.object(rollout, "_draw", whole_vocabulary_draw),
        mock.patch.object(rollout, "reserved_cache", growing_cache),
        mock.patch.object(rollout, "adapters_merged", lambda lm: nullcontext()),
    ):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the training jobs' default: 1 here)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not CHECKPOINT.exists():
        convert_default_policy(CHECKPOINT)
    config = OnlineDPOConfig(policy=str(CHECKPOINT), samples_per_prompt=args.samples, prompts_per_round=args.prompts)
    policy, _, tokenizer = build_policy(config, temperature=config.temperature)
    policy.eval()
    lines = STARTER_FILE.read_text(encoding="utf-8").splitlines()[: args.prompts]
    prompts = [[{"role": "user", "content": json.loads(line)["prompt"]}] for line in lines]
    rows = [row for row in encode_prompts(tokenizer, prompts, 512) for _ in range(args.samples)]

    def run(label: str) -> dict:
        generators = row_generators(0, 0, len(rows), torch.device("cpu"))
        load = load_now()
        start, cpu = time.perf_counter(), time.process_time()
        _, _, sampled = sample_batch(policy, tokenizer, rows, generators, args.max_new_tokens)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        tokens = int(sampled.mask.sum())
        print(f"{label:6s} {tokens} tokens in {wall:6.2f} s = {tokens / wall:6.1f} tokens/s (load {load:.2f})")
        return {"wall_s": wall, "cpu_s": cpu, "tokens": tokens, "tokens_per_s": tokens / wall, "sampled": sampled}

    ours_runs, naive_runs = [], []
    with torch.no_grad():
        for repeat in range(args.repeats):
            for side in ("ours", "naive") if repeat % 2 == 0 else ("naive", "ours"):
                if side == "ours":
                    ours_runs.append(run("ours"))
                else:
                    with naive():
                        naive_runs.append(run("naive"))
    # Merged adapters and attention over a strided cache round differently in the last bits, so a draw that
    # falls at a token boundary can go the other way: the share of answers drawn token for token the same.
    same = statistics.mean(
        float(torch.equal(o_row, n_row))
        for o, n in zip(ours_runs, naive_runs, strict=True)
        for o_row, n_row in zip(o["sampled"].tokens, n["sampled"].tokens, strict=True)
    )
    ours = statistics.median(r["tokens_per_s"] for r in ours_runs)
    theirs = statistics.median(r["tokens_per_s"] for r in naive_runs)
    print(f"ours {ours:.1f} tokens/s, naive {theirs:.1f}: {ours / theirs:.2f}x; answers drawn the same: {same:.0%}")
    record = {
        "ratio": round(ours / theirs, 3),
        "ours_tokens_per_s": round(ours, 2),
        "naive_tokens_per_s": round(theirs, 2),
        "same_answers_share": round(same, 3),
        "rows": len(rows),
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "load_before": load_now(),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
