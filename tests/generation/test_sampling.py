"""The step sampler draws from exactly the distribution transformers' temperature and top-p warpers keep.

Reference: transformers' ``TemperatureLogitsWarper`` and ``TopPLogitsWarper`` followed by a softmax, on
logits built so the nucleus is small (inside the first candidates), large (past them, so the sampler must
widen) or a single token. Draw frequencies over many rows are compared with the reference probabilities."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

from app.generation import sampling
from app.generation.sampling import SampledStep, draw, nucleus

VOCAB = 2000


def reference(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    warp = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(top_p)])
    return torch.softmax(warp(None, logits.clone()), dim=-1)


def peaked(rows: int, scale: float, seed: int) -> torch.Tensor:
    """Logits whose softmax decays with rank at ``scale`` (large: a few tokens hold the mass)."""
    g = torch.Generator().manual_seed(seed)
    ranks = torch.stack([torch.randperm(VOCAB, generator=g) for _ in range(rows)]).float()
    return -ranks * scale / VOCAB + 0.01 * torch.randn(rows, VOCAB, generator=g)


def dense(probs_ids: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    ids, probs = probs_ids
    return torch.zeros(ids.shape[0], VOCAB).scatter_(-1, ids, probs)


@pytest.mark.parametrize(
    ("scale", "temperature", "top_p"),
    [(4000.0, 1.0, 0.9), (40.0, 0.8, 0.95), (4000.0, 0.7, 0.5), (10.0, 1.3, 0.99)],
    ids=["nucleus-in-first-k", "nucleus-past-first-k", "few-tokens", "most-of-the-vocabulary"],
)
def test_nucleus_is_transformers_top_p(scale: float, temperature: float, top_p: float) -> None:
    logits = peaked(4, scale, seed=1)
    ours = dense(nucleus(logits / temperature, top_p))
    torch.testing.assert_close(ours, reference(logits, temperature, top_p), atol=1e-5, rtol=1e-4)


def test_a_nucleus_past_the_first_candidates_widens(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = peaked(3, 10.0, seed=2)
    kept = (reference(logits, 1.0, 0.95) > 0).sum(-1)
    assert int(kept.max()) > sampling.FIRST_K  # the case exercises the widening
    ids, probs = nucleus(logits, 0.95)
    assert ids.shape[1] > sampling.FIRST_K and torch.equal((probs > 0).sum(-1), kept)


def test_the_likeliest_token_always_stays() -> None:
    logits = torch.zeros(2, VOCAB)
    logits[0, 7] = logits[1, 11] = 30.0  # nearly all the mass on one token
    assert draw(logits, 1.0, 0.01).tolist() == [7, 11]


@pytest.mark.parametrize("top_p", [0.9, 1.0])
def test_draw_frequencies_match_the_reference(top_p: float) -> None:
    row = peaked(1, 600.0, seed=3)
    expected = reference(row, 0.8, top_p)[0]
    torch.manual_seed(0)
    tokens = draw(row.expand(50_000, VOCAB), 0.8, top_p)
    freq = torch.bincount(tokens, minlength=VOCAB).float() / tokens.numel()
    support = expected > 0
    assert bool((freq[~support] == 0).all())  # nothing outside the nucleus
    assert (freq - expected).abs().max().item() < 0.01  # binomial s.d. ≤ 0.0023 at 50k draws
    assert int(support.sum()) > 3  # a real nucleus, not one token


def test_the_processor_leaves_only_the_drawn_token_for_greedy() -> None:
    logits = peaked(5, 3000.0, seed=4)
    torch.manual_seed(9)
    scores = SampledStep(0.8, 0.9)(torch.zeros(5, 1, dtype=torch.long), logits)
    torch.manual_seed(9)
    expected = draw(logits, 0.8, 0.9)
    assert torch.equal(scores.argmax(-1), expected)
    assert torch.equal(torch.isfinite(scores).sum(-1), torch.ones(5, dtype=torch.long))


@pytest.mark.parametrize(("temperature", "top_p"), [(0.0, 0.9), (1.0, 0.0), (1.0, 1.5)])
def test_the_processor_refuses_settings_it_cannot_sample(temperature: float, top_p: float) -> None:
    with pytest.raises(ValueError, match="temperature > 0"):
        SampledStep(temperature, top_p)
