"""Temperature and nucleus (top-p) sampling of one decoding step, without sorting the vocabulary.

transformers' sampler sorts each row's whole vocabulary for top-p and then draws with ``torch.multinomial``
over it: with SmolLM2's 49k tokens at batch 32 on this project's CPUs that was a quarter of a decoding step
(sort 17 %, multinomial's exponential draws 8 %, profiled on ``bench/generation.py``'s workload). The nucleus
almost always sits among a few hundred tokens, so :func:`draw` takes the ``k`` largest (``topk``, no full
sort), checks that their mass reaches ``top_p`` and widens ``k`` for any row where it does not, then draws
one token per row by inverse CDF from a single uniform number. The distribution is exactly transformers':
tokens in descending order are kept while the mass before them is below ``top_p`` (so at least one is), and
the kept ones are renormalised.

:class:`SampledStep` plugs this into ``generate`` as its last logits processor under greedy decoding: it
draws the token and returns scores whose only finite entry is that token, so greedy's argmax takes it.
"""

from __future__ import annotations

import torch

FIRST_K = 256  # candidates tried first; each widening multiplies by WIDEN until the whole vocabulary
WIDEN = 16


def nucleus(logits: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids [B, k], their probabilities renormalised over the nucleus [B, k], 0 outside it) of a step's
    logits [B, V], already tempered. Rows share one ``k``: the smallest tried that covers every row's nucleus."""
    vocab = logits.shape[-1]
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)  # [B, 1]
    k = min(FIRST_K, vocab)
    while True:
        top, ids = logits.topk(k, dim=-1)  # sorted, largest first
        probs = (top - lse).exp_()
        before = probs.cumsum(-1) - probs  # mass of the larger tokens
        if k == vocab or bool((before[:, -1] + probs[:, -1] >= top_p).all()):
            break
        k = min(k * WIDEN, vocab)
    kept = probs.masked_fill_(before >= top_p, 0.0)  # the likeliest token has nothing before it: it stays
    return ids, kept / kept.sum(-1, keepdim=True)


def draw(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """One token per row [B] from logits [B, V] at ``temperature`` (> 0) and ``top_p``, from torch's
    default generator (a caller that seeds it gets reproducible draws)."""
    tempered = logits.float() / temperature
    if top_p >= 1.0:
        ids = None
        probs = torch.softmax(tempered, dim=-1)
    else:
        ids, probs = nucleus(tempered, top_p)
    cdf = probs.cumsum(-1, dtype=torch.float64)  # float64: summed in float32, the tail of 49k tokens loses mass
    u = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    pick = torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)  # [B, 1]
    # A zero-probability entry never gets picked: searchsorted(right) skips the flat steps of the CDF.
    return (pick if ids is None else ids.gather(-1, pick)).squeeze(-1)


class SampledStep:
    """A transformers logits processor (the ``LogitsProcessor`` call protocol) that samples the step's token
    itself; generate must run greedily with it last, so the argmax of its scores is the drawn token."""

    def __init__(self, temperature: float, top_p: float) -> None:
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"needs temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = draw(scores, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, token[:, None], 0.0)
