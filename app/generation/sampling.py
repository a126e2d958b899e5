"""Temperature and nucleus (top-p) sampling of one decoding step, without sorting the vocabulary.

transformers' sampler sorts each row's whole vocabulary for top-p and then draws with ``torch.multinomial``
over it: with SmolLM2's 49k tokens at batch 32 on this project's CPUs that was a quarter of a decoding step
(sort 17 %, multinomial's exponential draws 8 %, profiled on ``bench/generation.py``'s workload). The nucleus
almost always sits among a few hundred tokens, so :func:`nucleus` takes the ``k`` largest (``topk``, no full
sort), checks that their mass reaches ``top_p`` and widens ``k`` for the rows where it does not, then
:func:`draw` picks one token per row by inverse CDF from a single uniform number. The distribution is exactly
transformers': tokens in descending order are kept while the mass before them is below ``top_p`` (so at least
one is), and the kept ones are renormalised. Without a nucleus cut the inverse CDF runs over the whole
vocabulary in two levels (:func:`inverse_cdf`).

:class:`SampledStep` plugs this into ``generate`` as its last logits processor under greedy decoding: it
draws the token and returns scores whose only finite entry is that token, so greedy's argmax takes it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as nn_functional

FIRST_K = 256  # candidates tried first; each widening multiplies by WIDEN until the whole vocabulary
WIDEN = 16
DRAW_BLOCK = 256  # vocabulary entries per block of the two-level inverse CDF


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first index of each row of ``probs`` [B, V] (non-negative, any total) whose cumulative mass
    exceeds ``u`` [B] (float64 in [0, 1)) times the row's total: one token per row [B], never one of mass 0.

    The CDF is taken in two levels, the mass of each block of :data:`DRAW_BLOCK` entries and then the one
    block that u falls in, both summed in float64 so the tail of a 50k vocabulary keeps its mass: a float64
    cumulative sum over the whole [B, V] row cost 100 ms a step at 128 rows, half of a training step's
    sampling work besides the model (and 40 ms of a 64-row pool step's 430)."""
    rows, vocab = probs.shape
    blocks = nn_functional.pad(probs, (0, -vocab % DRAW_BLOCK)).view(rows, -1, DRAW_BLOCK)  # [B, N, S]
    block_cdf = blocks.sum(-1).double().cumsum(-1)  # [B, N]: 256 float32 terms a block lose nothing that matters
    total = block_cdf[:, -1:]
    target = torch.minimum(u.unsqueeze(-1) * total, torch.nextafter(total, torch.zeros_like(total)))  # [B, 1], < total
    block = torch.searchsorted(block_cdf, target, right=True).clamp_(max=block_cdf.shape[-1] - 1)  # [B, 1]
    before = torch.where(block > 0, block_cdf.gather(-1, (block - 1).clamp(min=0)), 0.0)
    inner = blocks.gather(1, block.unsqueeze(-1).expand(-1, 1, DRAW_BLOCK)).squeeze(1).cumsum(-1, dtype=torch.float64)
    # What is left of u's mass inside the block, kept under the block's own total (the two sums round apart), so
    # the search lands on an entry of positive probability: searchsorted(right) skips the flat steps of the CDF.
    rest = torch.minimum(target - before, torch.nextafter(inner[:, -1:], torch.zeros_like(inner[:, -1:])))
    offset = torch.searchsorted(inner, rest, right=True)
    return (block * DRAW_BLOCK + offset).squeeze(-1).clamp(max=vocab - 1)


def nucleus(logits: torch.Tensor, top_p: float) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The nucleus of every row of a step's logits [B, V], already tempered, in groups of rows that share a
    candidate count k: [(row indices [R], token ids [R, k], their probabilities renormalised over the
    nucleus [R, k], 0 outside it)], the groups covering each row once.

    Only the rows whose nucleus is not among the first k candidates are widened, by themselves: ``topk``'s
    cost grows with k, and at temperature 1 and top-p 0.95 about a quarter of a 64-row batch of SmolLM2 needs
    4096 candidates, which taken for every row cost 24 ms a step against 6 for those rows alone."""
    vocab = logits.shape[-1]
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # [B, 1]
    rows, k, groups = torch.arange(logits.shape[0], device=logits.device), min(FIRST_K, vocab), []
    while rows.numel():
        top, ids = logits.topk(k, dim=-1)  # sorted, largest first
        probs = (top - lse).exp_()
        before = probs.cumsum(-1) - probs  # mass of the larger tokens
        covered = (before[:, -1] + probs[:, -1] >= top_p) | (k == vocab)
        kept = probs.masked_fill_(before >= top_p, 0.0)  # the likeliest token has nothing before it: it stays
        done = covered.nonzero().squeeze(-1)
        groups.append((rows[done], ids[done], kept[done] / kept[done].sum(-1, keepdim=True)))
        wider = (~covered).nonzero().squeeze(-1)
        rows, logits, lse, k = rows[wider], logits[wider], lse[wider], min(k * WIDEN, vocab)
    return [group for group in groups if group[0].numel()]


def draw(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One token per row [B] from logits [B, V] at ``temperature`` (> 0) and ``top_p``, from ``generator``
    (torch's default one when None)."""
    tempered = logits.float() / temperature
    u = torch.rand(tempered.shape[0], device=tempered.device, dtype=torch.float64, generator=generator)
    if top_p >= 1.0:
        return inverse_cdf(torch.softmax(tempered, dim=-1), u)
    token = torch.empty(tempered.shape[0], dtype=torch.long, device=tempered.device)
    for rows, ids, probs in nucleus(tempered, top_p):
        cdf = probs.cumsum(-1, dtype=torch.float64)  # float64, as the whole-vocabulary draw sums
        pick = torch.searchsorted(cdf, (u[rows] * cdf[:, -1]).unsqueeze(-1), right=True).clamp_(max=ids.shape[-1] - 1)
        # A zero-probability entry never gets picked: searchsorted(right) skips the flat steps of the CDF.
        token[rows] = ids.gather(-1, pick).squeeze(-1)
    return token


class SampledStep:
    """A transformers logits processor (the ``LogitsProcessor`` call protocol) that samples the step's token
    itself; generate must run greedily with it last, so the argmax of its scores is the drawn token."""

    def __init__(self, temperature: float, top_p: float, generator: torch.Generator | None = None) -> None:
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"needs temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.temperature, self.top_p, self.generator = temperature, top_p, generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = draw(scores, self.temperature, self.top_p, self.generator)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, token[:, None], 0.0)
