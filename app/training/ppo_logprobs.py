"""log π(token) of sampled tokens without materialising the [tokens × vocabulary] logits.

PPO needs the log-probability of one token per position, yet a plain ``log_softmax(h·Wᵀ)`` allocates a
[N, V] tensor several times over (logits, log-softmax, their gradients): for a 49k vocabulary and 200
response tokens that is 38 MiB each, which glibc maps fresh from the kernel and page-faults in on every
use — on a small CPU model, as much time as the arithmetic. :class:`ChunkedTokenLogprobs` walks the rows
in chunks of about 4 MiB instead, keeping only the log-normaliser per row, and recomputes each chunk's
logits in the backward pass: one extra matmul buys bounded, reusable memory (also on GPUs, where it keeps
long-vocabulary batches from needing the full logits tensor at all).
"""

from __future__ import annotations

import torch
from torch import nn

CHUNK_BYTES = 4 * 2**20  # float32 logits per chunk


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] as one fused cross-entropy. logits [B, T, V], tokens [B, T] → [B, T].

    Equal to ``ppo_math.logprobs_from_logits`` at temperature 1 (pass tempered logits)."""
    flat = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens.flatten(), reduction="none")
    return -flat.view_as(tokens)


class ChunkedTokenLogprobs(torch.autograd.Function):
    """log softmax(h·Wᵀ)[token] per row of h [N, H], ``chunk`` rows at a time, in float32."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, tokens: torch.Tensor,  # noqa: ANN001 - ctx
                chunk: int) -> torch.Tensor:
        w = weight.float()
        logsumexp = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)  # [N]
        picked = torch.empty_like(logsumexp)  # [N] the chosen token's logit
        with torch.autocast(hidden.device.type, enabled=False):  # float32 even inside a bf16 autocast
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                logits = hidden[rows].float() @ w.T  # [n, V]
                logsumexp[rows] = torch.logsumexp(logits, dim=-1)
                picked[rows] = logits.gather(-1, tokens[rows, None]).squeeze(-1)
        ctx.save_for_backward(hidden, weight, tokens, logsumexp)
        ctx.chunk = chunk
        return picked - logsumexp

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001 - ctx
        """∂ log p(y) / ∂ logits = onehot(y) − softmax(logits), chunk by chunk; then through h·Wᵀ."""
        hidden, weight, tokens, logsumexp = ctx.saved_tensors
        w = weight.float()
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], ctx.chunk):
                rows = slice(start, start + ctx.chunk)
                h, g = hidden[rows].float(), grad[rows, None].float()  # [n, H], [n, 1]
                grad_logits = (h @ w.T).sub_(logsumexp[rows, None]).exp_().mul_(-g)  # −softmax · g
                grad_logits.scatter_add_(-1, tokens[rows, None], g)  # + onehot · g
                if grad_hidden is not None:
                    grad_hidden[rows] = (grad_logits @ w).to(hidden.dtype)
                if grad_weight is not None:
                    grad_weight.addmm_(grad_logits.T, h)
        grad_weight = grad_weight.to(weight.dtype) if grad_weight is not None else None
        return grad_hidden, grad_weight, None, None


def sampled_token_logprobs(hidden: torch.Tensor, head: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(head(hidden))[token]: hidden [B, T, H], tokens [B, T] → [B, T] float32.

    Chunked for a bias-free linear head (every causal LM here); anything else takes the plain path."""
    weight = getattr(head, "weight", None)
    if not isinstance(head, nn.Linear) or head.bias is not None or weight is None:
        return token_logprobs(head(hidden), tokens)
    chunk = max(1, CHUNK_BYTES // (4 * weight.shape[0]))
    flat = ChunkedTokenLogprobs.apply(hidden.flatten(0, 1), weight, tokens.flatten(), chunk)
    return flat.view_as(tokens)
