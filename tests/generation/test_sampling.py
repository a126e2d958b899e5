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


def dense(groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], rows: int) -> torch.Tensor:
    """The nucleus groups as one [rows, VOCAB] matrix of probabilities; every row must be in one group."""
    out = torch.full((rows, VOCAB), float("nan"))
    for index, ids, probs in groups:
        out[index] = torch.zeros(len(index), VOCAB).scatter_(-1, ids, probs)
    assert not bool(out.isnan().any()), "a row is in no group"
    assert sum(len(index) for index, _, _ in groups) == rows, "a row is in two groups"
    return out


@pytest.mark.parametrize(
    ("scale", "temperature", "top_p"),
    [(4000.0, 1.0, 0.9), (40.0, 0.8, 0.95), (4000.0, 0.7, 0.5), (10.0, 1.3, 0.99)],
    ids=["nucleus-in-first-k", "nucleus-past-first-k", "few-tokens", "most-of-the-vocabulary"],
)
def test_nucleus_is_transformers_top_p(scale: float, temperature: float, top_p: float) -> None:
    logits = peaked(4, scale, seed=1)
    ours = dense(nucleus(logits / temperature, top_p), 4)
    torch.testing.assert_close(ours, reference(logits, temperature, top_p), atol=1e-5, rtol=1e-4)


def test_a_nucleus_past_the_first_candidates_widens() -> None:
    logits = peaked(3, 10.0, seed=2)
    kept = (reference(logits, 1.0, 0.95) > 0).sum(-1)
    assert int(kept.max()) > sampling.FIRST_K  # the case exercises the widening
    ((index, ids, probs),) = nucleus(logits, 0.95)
    assert ids.shape[1] > sampling.FIRST_K and torch.equal((probs[torch.argsort(index)] > 0).sum(-1), kept)


def mixed_rows() -> torch.Tensor:
    """Rows 0, 2, 4 hold their nucleus among the first candidates, rows 1 and 3 need far more."""
    narrow, wide = peaked(3, 4000.0, seed=5), peaked(2, 10.0, seed=6)
    return torch.stack([narrow[0], wide[0], narrow[1], wide[1], narrow[2]])


def test_only_the_rows_that_need_more_candidates_are_widened() -> None:
    logits = mixed_rows()
    groups = nucleus(logits, 0.95)
    assert [(index.tolist(), ids.shape[1]) for index, ids, _ in groups] == [
        ([0, 2, 4], sampling.FIRST_K),
        ([1, 3], min(sampling.FIRST_K * sampling.WIDEN, VOCAB)),
    ]
    torch.testing.assert_close(dense(groups, 5), reference(logits, 1.0, 0.95), atol=1e-5, rtol=1e-4)


def test_rows_widened_apart_draw_the_token_a_shared_candidate_count_draws() -> None:
    """Each row's draw is the inverse CDF of its own nucleus at its own u, whatever the other rows need."""
    logits = mixed_rows().repeat(20, 1)
    torch.manual_seed(3)
    drawn = draw(logits, 1.0, 0.95)
    torch.manual_seed(3)
    u = torch.rand(logits.shape[0], dtype=torch.float64)
    probs = reference(logits, 1.0, 0.95)  # every row over the whole vocabulary, sorted by probability
    order = torch.sort(probs, dim=-1, descending=True, stable=True).indices
    cdf = probs.gather(-1, order).cumsum(-1, dtype=torch.float64)
    pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True)
    assert torch.equal(drawn, order.gather(-1, pick).squeeze(-1))


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
