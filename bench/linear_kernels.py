"""float32 linear layers on this CPU: torch's default (``F.linear``, MKL's sgemm) against oneDNN's kernel
(``app.kernels.linear``), forward and backward, on the shapes the project's models compute.

The shapes: the tiny reward workload's Llama (64 wide, 552 tokens a step), MiniLM training (a batch of 8
pairs of 128 tokens, 384 wide), SmolLM2 decoding (64 rows) and its output layer, SmolLM2 training (512
tokens). Each is timed best-of-``--repeats`` over ``--iters`` calls of y = x·Wᵀ + b, ∂x, ∂W and ∂b on one
thread (``--threads``); the relative difference of the outputs and gradients is printed beside it.
Also printed: what ``onednn_is_faster`` decides here (the measurement every process makes once).

    .venv/bin/python bench/linear_kernels.py [--threads 1] [--iters 30] [--repeats 5]

The last line is one JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing

import torch
import torch.nn.functional as F

from app.kernels import linear as kernels

SHAPES = {  # name: (tokens, in features, out features)
    "tiny reward MLP up": (552, 64, 256),
    "tiny reward attention": (552, 64, 64),
    "MiniLM attention": (2048, 384, 384),
    "MiniLM MLP up": (2048, 384, 1536),
    "MiniLM MLP down": (2048, 1536, 384),
    "SmolLM2 decode MLP up": (64, 576, 1536),
    "SmolLM2 decode output layer": (64, 576, 49152),
    "SmolLM2 train MLP up": (512, 576, 1536),
}


def step_time(
    fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    grad: torch.Tensor,
    iters: int,
    repeats: int,
) -> float:
    """Best seconds of one forward + backward over ``repeats`` rounds of ``iters`` calls."""

    def once() -> None:
        torch.autograd.grad(fn(x, weight, bias), (x, weight, bias), grad)

    once()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            once()
        best = min(best, (time.perf_counter() - start) / iters)
    return best


def relative_difference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor) -> float:
    """The largest |ours − torch's| / max |torch's| over the output and the three gradients."""
    results = []
    for fn in (F.linear, kernels.linear):
        out = fn(x, weight, bias)
        results.append([out, *torch.autograd.grad(out, (x, weight, bias), grad)])
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(results[1], results[0], strict=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"load before: {load}; torch threads {a.threads}; oneDNN chosen here: {kernels.onednn_is_faster()}")
    kernels.onednn_is_faster = lambda: True  # time oneDNN's path whatever the decision was
    rows = {}
    for name, (tokens, fan_in, fan_out) in SHAPES.items():
        torch.manual_seed(0)
        x = torch.randn(tokens, fan_in, requires_grad=True)
        weight = torch.randn(fan_out, fan_in, requires_grad=True)
        bias = torch.randn(fan_out, requires_grad=True)
        grad = torch.randn(tokens, fan_out)
        # small shapes get more calls (up to 10x --iters), the largest at least 3, so each round is ~comparable
        iters = min(max(3, a.iters * 2_000_000 // (tokens * fan_in * fan_out)), a.iters * 10)
        default = step_time(F.linear, x, weight, bias, grad, iters, a.repeats)
        onednn = step_time(kernels.linear, x, weight, bias, grad, iters, a.repeats)
        flops = 6 * tokens * fan_in * fan_out  # forward, ∂x and ∂W: three products
        rows[name] = {
            "shape": [tokens, fan_in, fan_out],
            "default_ms": round(default * 1e3, 3),
            "onednn_ms": round(onednn * 1e3, 3),
            "ratio": round(default / onednn, 2),
            "default_gflops": round(flops / default / 1e9, 1),
            "onednn_gflops": round(flops / onednn / 1e9, 1),
            "relative_difference": float(f"{relative_difference(x, weight, bias, grad):.1e}"),
        }
        r = rows[name]
        print(
            f"{name:>28} {tokens}x{fan_in}->{fan_out}: torch {r['default_ms']:.3f} ms ({r['default_gflops']} GFLOP/s), "
            f"oneDNN {r['onednn_ms']:.3f} ms ({r['onednn_gflops']} GFLOP/s): {r['ratio']:.2f}x, "
            f"relative difference {r['relative_difference']:.0e}",
            flush=True,
        )
    ratios = [r["ratio"] for r in rows.values()]
    record = {
        "bench": "linear_kernels",
        "min_ratio": min(ratios),
        "max_ratio": max(ratios),
        "shapes": rows,
        "threads": a.threads,
        "load": {"before": load, "after": [round(v, 2) for v in os.getloadavg()]},
        "torch": torch.__version__,
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
