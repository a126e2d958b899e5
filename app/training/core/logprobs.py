"""log π(token) of sampled tokens without materialising the [tokens × vocabulary] logits.

PPO needs the log-probability of one token per position, yet a plain ``log_softmax(h·Wᵀ)`` allocates an
[N, V] tensor several times over (logits, log-softmax and their gradients): for a 49k vocabulary and 200
response tokens, 38 MiB each, which glibc maps fresh from the kernel and page-faults in on every use. On
a small CPU model that costs as much as the arithmetic. :class:`ChunkedTokenLogprobs` walks the
vocabulary in blocks instead — log Σ exp accumulated online, as flash attention does — so each block of
W is read once into cache and each [N, block] tensor is small and reused; the backward pass recomputes a
block's logits rather than keeping them. On a GPU it bounds the memory of long-vocabulary batches too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.kernels.linear import linear, matmul

CHUNK_BYTES = 2**20  # per float32 [N, block] logits tensor and [block, H] weight slice on the CPU: L2-sized


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] as one fused cross-entropy. logits [B, T, V], tokens [B, T] → [B, T].

    Equal to ``ppo_math.logprobs_from_logits`` at temperature 1 (pass tempered logits)."""
    flat = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens.flatten(), reduction="none")
    return -flat.view_as(tokens)


class ChunkedTokenLogprobs(torch.autograd.Function):
    """log softmax(h·Wᵀ)[token] per row of h [N, H], over vocabulary blocks of ``block`` rows of W, in float32
    (``grad_enabled``: whether the caller records a graph; inside ``forward`` autograd is always off)."""

    @staticmethod
    def forward(
        ctx: Any,  # torch's FunctionCtx, which also carries what forward stores for backward
        hidden: torch.Tensor,
        weight: torch.Tensor,
        tokens: torch.Tensor,
        block: int,
        grad_enabled: bool = True,
    ) -> torch.Tensor:
        h, w = hidden.float(), weight.float()
        running_max = torch.full((h.shape[0],), float("-inf"), device=h.device)  # [N]
        running_sum = torch.zeros_like(running_max)  # Σ exp(logit − running_max) so far
        # With a frozen head (LoRA) backward needs only E_softmax[w] = Σ_v p_v·w_v per row: accumulated here
        # in the same pass, as flash attention accumulates its output, it spares backward a second walk
        # over the vocabulary (a product and an exp per block).
        expect = grad_enabled and ctx.needs_input_grad[0] and not ctx.needs_input_grad[1]
        weighted = torch.zeros_like(h) if expect else None  # Σ exp(logit − running_max)·w so far, [N, H]
        with torch.autocast(h.device.type, enabled=False):  # float32 even inside a bf16 autocast
            for start in range(0, w.shape[0], block):
                w_block = w[start : start + block]
                logits = linear(h, w_block)  # [N, block]
                new_max = torch.maximum(running_max, logits.amax(dim=-1))
                rescale = (running_max - new_max).exp()  # [N]; 0 on the first block
                weights = logits.sub_(new_max[:, None]).exp_()  # [N, block]
                running_sum = running_sum * rescale + weights.sum(-1)
                if weighted is not None:
                    weighted.mul_(rescale[:, None]).add_(matmul(weights, w_block))
                running_max = new_max
            logsumexp = running_max + running_sum.log()  # [N]
            picked = (h * w[tokens]).sum(-1)  # [N] the sampled token's logit
        expected_w = weighted / running_sum[:, None] if weighted is not None else None
        ctx.save_for_backward(hidden, weight, tokens, logsumexp, expected_w)
        ctx.block = block
        return picked - logsumexp

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """∂ log p(y) / ∂ logits = onehot(y) − softmax(logits), block by block; then through h·Wᵀ."""
        hidden, weight, tokens, logsumexp, expected_w = ctx.saved_tensors
        h, w, g = hidden.float(), weight.float(), grad.float()[:, None]  # g [N, 1]
        if expected_w is not None:  # a frozen head: the forward pass has summed the softmax part already
            return (g * (w[tokens] - expected_w)).to(hidden.dtype), None, None, None, None
        grad_h = g * w[tokens]  # the one-hot part: [N, H]
        grad_w = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, w.shape[0], ctx.block):
                w_block = w[start : start + ctx.block]
                grad_logits = linear(h, w_block).sub_(logsumexp[:, None]).exp_().mul_(-g)  # −softmax · g
                grad_h.add_(matmul(grad_logits, w_block))
                if grad_w is not None:
                    grad_w[start : start + ctx.block].add_(matmul(grad_logits.T, h))
            if grad_w is not None:
                grad_w.index_add_(0, tokens, g * h)
        grad_hidden = grad_h.to(hidden.dtype) if ctx.needs_input_grad[0] else None
        return grad_hidden, grad_w.to(weight.dtype) if grad_w is not None else None, None, None, None


def sampled_token_logprobs(hidden: torch.Tensor, head: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(head(hidden))[token]: hidden [B, T, H], tokens [B, T] → [B, T] float32.

    Chunked for a bias-free linear head (every causal LM here); anything else takes the plain path."""
    weight = getattr(head, "weight", None)
    if not isinstance(head, nn.Linear) or head.bias is not None or weight is None:
        return token_logprobs(head(hidden), tokens)
    flat_hidden = hidden.flatten(0, 1)
    budget = CHUNK_BYTES if hidden.device.type == "cpu" else 64 * CHUNK_BYTES
    block = max(256, budget // (4 * max(flat_hidden.shape[0], weight.shape[1])))  # [N, block] and [block, H] fit
    flat = ChunkedTokenLogprobs.apply(flat_hidden, weight, tokens.flatten(), block, torch.is_grad_enabled())
    return flat.view_as(tokens)
