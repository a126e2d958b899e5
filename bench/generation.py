"""Throughput of the batched transformers backend against naive one-call-per-response generation.

Both generate the same 64 HH-RLHF prompts (first human turns) x 2 samples x up to 64 new tokens
with SmolLM2-135M-Instruct (the converted safetensors checkpoint) in the same process, and
report generated tokens per second (tokens up to and including EOS; a row's padding after EOS
costs the batched path time but earns it nothing). Ends with one JSON line.

Run::

    .venv/bin/python bench/generation.py [--batch-size 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# OpenMP threads that spin while a shared machine's other processes hold the cores slow torch
# down by 5-10x (measured here: 2 threads, batch 1, load 5: 0.9 vs 4.5 tokens/s); set before
# torch starts OpenMP, the same for both contenders.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

from app.generation import Generation, SamplingParams, TransformersBackend  # noqa: E402
from app.ml.convert import convert_default_policy  # noqa: E402

HH_TEST = Path("/work/shared/data/hh-rlhf/helpful-base_test.jsonl.gz")
DEFAULT_CHECKPOINT = Path(tempfile.gettempdir()) / "rlhf-smollm2-policy"


def first_human_turns(path: Path, count: int) -> list[str]:
    """The opening human message of the first ``count`` conversations."""
    turns: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            text = json.loads(line)["chosen"]
            turns.append(text.split("\n\nHuman: ", 1)[1].split("\n\nAssistant:", 1)[0].strip())
            if len(turns) == count:
                break
    return turns


def run_naive(backend: TransformersBackend, prompts: list[list[dict]], params: SamplingParams) -> list[Generation]:
    """One ``generate`` call, hence one model.generate, per response."""
    single = SamplingParams(params.temperature, params.top_p, params.max_new_tokens, None, 1)
    out: list[Generation] = []
    for p, messages in enumerate(prompts):
        for k in range(params.n):
            seeded = SamplingParams(single.temperature, single.top_p, single.max_new_tokens, 1000 * p + k, 1)
            out.extend(backend.generate([messages], seeded))
    return out


def timed(label: str, fn) -> tuple[float, int]:  # noqa: ANN001
    """Run ``fn``, print its throughput and return (tokens/s, tokens)."""
    start = time.perf_counter()
    generations = fn()
    seconds = time.perf_counter() - start
    tokens = sum(g.token_count for g in generations)
    stopped = sum(g.finish_reason == "stop" for g in generations)
    print(f"{label:>6}: {len(generations)} responses, {tokens} tokens ({stopped} hit EOS) in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s", flush=True)
    return tokens / seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="converted SmolLM2 folder (converted if missing)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="rows decoded together by the batched backend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-naive", action="store_true", help="tune the batch size without the slow baseline")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    backend = TransformersBackend.from_path(convert_default_policy(args.checkpoint), batch_size=args.batch_size)
    prompts = [[{"role": "user", "content": turn}] for turn in first_human_turns(HH_TEST, args.prompts)]
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0, n=args.samples)
    print(f"{args.prompts} prompts x {args.samples} samples x {args.max_new_tokens} new tokens, "
          f"batch {args.batch_size}, {args.threads} threads, load {os.getloadavg()[0]:.1f}", flush=True)

    backend.generate(prompts[:1], SamplingParams(max_new_tokens=2))  # warm-up: first-call allocations
    ours, _ = timed("ours", lambda: backend.generate(prompts, params))
    if args.skip_naive:
        print(json.dumps({"ours_tokens_per_s": round(ours, 2), "batch_size": args.batch_size}))
        return
    naive_backend = TransformersBackend(backend.model, backend.tokenizer, batch_size=1)
    naive, _ = timed("naive", lambda: run_naive(naive_backend, prompts, params))
    print(f"ratio: {ours / naive:.2f}x (load {os.getloadavg()[0]:.1f})")
    print(json.dumps({"ratio": round(ours / naive, 2), "ours_tokens_per_s": round(ours, 2), "naive_tokens_per_s": round(naive, 2)}))


if __name__ == "__main__":
    main()
