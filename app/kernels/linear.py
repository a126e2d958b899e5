"""Linear layers through oneDNN's float32 matrix product where it beats the BLAS torch calls by default.

torch's CPU builds compute ``F.linear`` and ``torch.mm`` in float32 with MKL, and MKL takes its AVX-512
code only on Intel processors: on an AMD EPYC with AVX-512 it runs its AVX2 kernels. oneDNN, which the
same builds ship for bf16 and for ``torch.compile``, chooses its code from the instructions the CPU has.
Measured on a 2-core AMD EPYC with AVX-512, one thread, float32 (``bench/linear_kernels.py``): 2.0-2.1x
on MiniLM's and SmolLM2's layers, forward and backward, 1.5x on SmolLM2's 49k-row output layer (memory-bound),
1.0-1.5x on a 64-wide toy model's. The arithmetic is the same float32 arithmetic in another summation order
(relative differences ~1e-6).

:func:`use_fast_linears` gives a model's ``nn.Linear`` layers that path when :func:`onednn_is_faster`
(measured once per process; ``RLHF_ONEDNN_LINEAR`` = ``on`` / ``off`` decides instead); anything not
float32 on the CPU (a GPU, bf16 weights) takes ``nn.Linear``'s own. :func:`matmul` is the same choice for
a plain product. Why not a global override of ``aten::mm``: it would change every library in the process
(the benchmarks run TRL beside us), and torch offers no float32 switch that keeps float32 precision.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

SETTING = "RLHF_ONEDNN_LINEAR"  # auto (measure), on, off
FASTER_BY = 1.25  # the margin oneDNN must win by before a process switches to it


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's dense linear kernel (every x86 CPU wheel has)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


@functools.cache
def onednn_is_faster() -> bool:
    """``RLHF_ONEDNN_LINEAR`` when it says on or off; else whether oneDNN's product of two 256 x 256 float32
    matrices beat torch's by :data:`FASTER_BY` here (best of 3 interleaved rounds, ~30 ms once per process)."""
    setting = os.environ.get(SETTING, "auto").strip().lower()
    if setting not in {"auto", "on", "off"}:
        raise ValueError(f"{SETTING}: expected auto, on or off, not {setting!r}")
    if setting == "off" or not onednn_available():
        return False
    return setting == "on" or _measured_speedup() >= FASTER_BY


def _measured_speedup() -> float:
    x, w = torch.randn(256, 256), torch.randn(256, 256)
    best = {"torch": float("inf"), "onednn": float("inf")}
    runs = {"torch": lambda: F.linear(x, w), "onednn": lambda: _linear(x, w, None)}
    with torch.inference_mode():
        for _ in range(3):
            for name, run in runs.items():
                run()  # warm: oneDNN builds its kernel on the first call of a shape
                start = time.perf_counter()
                for _ in range(10):
                    run()
                best[name] = min(best[name], time.perf_counter() - start)
    return best["torch"] / best["onednn"]


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [..., K] · weightᵀ [K, N] (+ bias) by oneDNN, with no graph recorded."""
    flat = x.reshape(-1, x.shape[-1])
    return torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "").view(*x.shape[:-1], weight.shape[0])


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [M, K] · b [K, N] by oneDNN (its linear takes the second factor transposed)."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    """y = x·Wᵀ + b; backward ∂x = g·W, ∂W = gᵀ·x, ∂b = Σ g, each product by oneDNN."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _linear(x, weight, bias)

    @staticmethod
    @once_differentiable  # its products record no graph: a second derivative must fail, not come out wrong
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        grad_x = _mm(flat, weight).view(x.shape) if ctx.needs_input_grad[0] else None
        grad_w = _mm(flat.t(), x.reshape(-1, x.shape[-1])) if ctx.needs_input_grad[1] else None
        grad_b = flat.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """oneDNN's path for float32 CPU tensors (a graph only where one is recorded), ``F.linear`` for the rest.
    Checked inline: a 64-wide model calls this thousands of times a second."""
    if (
        x.dtype is not torch.float32
        or weight.dtype is not torch.float32
        or x.device.type != "cpu"
        or weight.device.type != "cpu"
        or (bias is not None and (bias.dtype is not torch.float32 or bias.device.type != "cpu"))
        or x.numel() == 0
    ):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _OneDnnLinear.apply(x, weight, bias)
    return _linear(x, weight, bias)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, by oneDNN (differentiable) for float32 CPU tensors where :func:`onednn_is_faster`."""
    return _onednn_linear(x, weight, bias) if onednn_is_faster() else F.linear(x, weight, bias)


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [M, K] · b [K, N], by oneDNN where :func:`linear` would be."""
    return linear(a, b.t())


class FastLinear(nn.Linear):
    """An ``nn.Linear`` whose float32 CPU product runs through oneDNN: the same parameters, state dict and
    arithmetic; made by :func:`use_fast_linears`, never constructed directly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _onednn_linear(x, self.weight, self.bias)


def use_fast_linears(model: nn.Module) -> int:
    """Turn ``model``'s plain ``nn.Linear`` layers (adapters' too) into :class:`FastLinear`, in place, when
    oneDNN is the faster path here; returns how many. Their parameters, hooks and state are untouched: only
    the class changes, so a saved model loads anywhere as plain ``nn.Linear`` layers."""
    if not onednn_is_faster():
        return 0
    changed = 0
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = FastLinear
            changed += 1
    return changed
