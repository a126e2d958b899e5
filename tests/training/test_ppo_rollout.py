"""Rollout pieces: sampling matches the training forward, is cut at EOS and independent of the batch split;
rewards, safety penalty, pad token, prompt encoding and the cross-process statistics."""

from __future__ import annotations

import functools
import unittest.mock

import pytest
import torch
from test_ppo_trainer import PROMPTS, AnswerWordBonus, tiny_policy, wordlevel_tokenizer

from app.training.core.logprobs import ChunkedTokenLogprobs, token_logprobs
from app.training.ppo import rollout as rollout_module
from app.training.ppo.config import PPOConfig
from app.training.ppo.math import logprobs_from_logits, masked_whiten
from app.training.ppo.policy import build_actor_critic, ensure_distinct_pad, load_policy
from app.training.ppo.rollout import (
    Completion,
    Sampled,
    _draw,
    as_reward_function,
    collect_rollout,
    distinct_rows,
    encode_prompts,
    left_pad,
    row_generators,
    row_parts,
    sample_responses,
    score_completions,
)
from app.training.ppo.step import make_experience, whiten_across
from app.training.ppo.trainer import prompt_indices

CPU = torch.device("cpu")


def actor_and_tokenizer(**overrides: object):
    tok = wordlevel_tokenizer()
    config = PPOConfig(**{"temperature": 0.7, **overrides})
    lm, tok = load_policy(config, tiny_policy(tok), tok)
    actor, frozen = build_actor_critic(config, lm, None, len(tok))
    with torch.no_grad():  # move the adapters and value head off their zero init, so π ≠ π_ref and V ≠ 0
        for name, p in actor.named_parameters():
            if "lora_B" in name or "value_head" in name:
                p.normal_(0.0, 0.2)
    return actor, frozen, tok, config


def rollout_of(actor, frozen, tok, prompts, first_row: int = 0, max_new_tokens: int = 10):
    rows = encode_prompts(tok, prompts, 64)
    score = functools.partial(
        score_completions, reward=AnswerWordBonus(tok), classifier=None, safety_weight=0.0, safety_head="safety"
    )
    return collect_rollout(
        actor, frozen, tok, prompts, rows, row_generators(0, first_row, len(rows), CPU), max_new_tokens, score
    )


def assert_same_samples(first, second) -> None:
    """The same tokens and mask; log-probs, entropies and values equal up to float rounding."""
    assert torch.equal(first.tokens, second.tokens)
    assert torch.equal(first.mask, second.mask)
    for name in ("logprobs", "entropy", "values"):
        torch.testing.assert_close(getattr(first, name), getattr(second, name), atol=1e-5, rtol=0)


def sampled_rows(actor, tok, prompt_ids, prompt_mask, *, seed: int, max_new_tokens: int):
    """``sample_responses`` on left-padded prompts, each row from its own stream of ``seed``."""
    return sample_responses(
        actor,
        prompt_ids,
        prompt_mask,
        row_generators(seed, 0, prompt_ids.shape[0], CPU),
        max_new_tokens=max_new_tokens,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
    )


@pytest.mark.parametrize("use_lora", [True, False])
def test_sampled_logprobs_and_values_are_what_the_training_forward_computes(use_lora: bool) -> None:
    actor, frozen, tok, _ = actor_and_tokenizer(use_lora=use_lora)
    rollout = rollout_of(actor, frozen, tok, PROMPTS[:8])
    tokens = rollout.input_ids[:, -rollout.response_length :]
    with torch.no_grad():
        logprobs, values = actor(rollout.input_ids, rollout.attention_mask, tokens)
        hidden = actor.hidden(rollout.input_ids, rollout.attention_mask)[:, -rollout.response_length - 1 : -1]
        tempered = actor.causal_lm.lm_head(hidden) / 0.7  # τ applied to the logits, as sampling did
    torch.testing.assert_close(logprobs * rollout.mask, rollout.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(token_logprobs(tempered, tokens) * rollout.mask, rollout.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(values * rollout.mask, rollout.values, atol=1e-5, rtol=0)
    if use_lora:  # the reference is the same weights with the adapters off: different, but the same shape
        assert (rollout.ref_logprobs - rollout.logprobs).abs().max() > 1e-3


def test_responses_are_cut_at_the_first_eos_and_padded_after_it() -> None:
    actor, frozen, tok, _ = actor_and_tokenizer()
    with torch.no_grad():  # make EOS likely so that some responses end early
        actor.causal_lm.lm_head.weight[tok.eos_token_id] *= 0.0
        actor.causal_lm.lm_head.weight[tok.eos_token_id] += actor.causal_lm.model.norm.weight.sign() * 0.02
    rollout = rollout_of(actor, frozen, tok, PROMPTS[:16], max_new_tokens=12)
    tokens = rollout.input_ids[:, -rollout.response_length :]
    lengths = rollout.mask.sum(1).long()
    assert rollout.ended.any() and (lengths < 12).any()
    for row, n, ended in zip(tokens.tolist(), lengths.tolist(), rollout.ended.tolist(), strict=True):
        assert (tok.eos_token_id in row[:n]) == ended
        if ended:
            assert row.index(tok.eos_token_id) == n - 1  # the EOS is the last kept token
        assert all(t == tok.pad_token_id for t in row[n:])
    assert (rollout.attention_mask[:, -rollout.response_length :] == rollout.mask).all()


def test_samples_do_not_depend_on_how_the_batch_is_split() -> None:
    actor, frozen, tok, _ = actor_and_tokenizer()
    prompts = [PROMPTS[i] for i in (0, 7, 13, 20, 26, 33, 40, 47)]
    whole = rollout_of(actor, frozen, tok, prompts)
    halves = [rollout_of(actor, frozen, tok, prompts[:4]), rollout_of(actor, frozen, tok, prompts[4:], first_row=4)]
    for part, rows in zip(halves, (slice(0, 4), slice(4, 8)), strict=True):
        width = part.response_length
        whole_tokens = whole.input_ids[rows, -whole.response_length :]
        torch.testing.assert_close(part.input_ids[:, -width:], whole_tokens[:, :width])
        torch.testing.assert_close(part.logprobs, whole.logprobs[rows, :width], atol=1e-5, rtol=0)
        torch.testing.assert_close(part.scores, whole.scores[rows])


def test_inverse_cdf_draws_follow_the_distribution() -> None:
    probs = torch.tensor([0.1, 0.0, 0.2, 0.7]).repeat(20000, 1)
    draws = _draw(probs, row_generators(3, 0, 20000, CPU))
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert freq[1] == 0
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.0, 0.2, 0.7]), atol=0.015, rtol=0)


@pytest.mark.parametrize("vocab", [5, 256, 1000, 49152])
def test_the_two_level_draw_picks_the_token_a_whole_vocabulary_cdf_picks(vocab: int) -> None:
    torch.manual_seed(vocab)
    rows = 64
    logits = torch.randn(rows, vocab) * 4
    logits[:, torch.randperm(vocab)[: vocab // 3]] = float("-inf")  # tokens a filter removed: never drawn
    probs = torch.softmax(logits, dim=-1)
    generators = row_generators(7, 0, rows, CPU)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in row_generators(7, 0, rows, CPU)])
    cdf = probs.cumsum(-1, dtype=torch.float64)
    expected = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    drawn = _draw(probs, generators)
    assert torch.equal(drawn, expected)
    assert bool((probs.gather(-1, drawn[:, None]) > 0).all())


def test_a_draw_at_the_very_top_of_the_cdf_takes_the_last_token_with_mass(monkeypatch: pytest.MonkeyPatch) -> None:
    probs = torch.zeros(1, 700)
    probs[0, [3, 300]] = torch.tensor([0.25, 0.75])
    top = torch.tensor([1.0 - 2.0**-53], dtype=torch.float64)  # the largest uniform number below 1
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: top.clone())
    assert _draw(probs, [torch.Generator()]).tolist() == [300]


@pytest.mark.parametrize("use_lora", [True, False])
def test_prompts_sampled_k_times_share_one_prefill_and_sample_as_if_run_apart(use_lora: bool) -> None:
    """k copies of a prompt are prefilled once (their KV cache repeated): the samples, log-probs, entropies and
    values are what one forward per copy gives."""
    actor, _, tok, _ = actor_and_tokenizer(use_lora=use_lora)
    repeated = [prompt for prompt in PROMPTS[:3] for _ in range(4)]
    prompt_ids, prompt_mask = left_pad(encode_prompts(tok, repeated, 64), tok.pad_token_id, CPU)
    calls: list[int] = []
    forward = actor.trunk.forward

    @functools.wraps(forward)
    def counted(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    def sample():
        return sampled_rows(actor, tok, prompt_ids, prompt_mask, seed=5, max_new_tokens=8)

    actor.trunk.forward = counted
    shared = sample()
    assert calls[0] == 3  # one prefill row per distinct prompt
    actor.trunk.forward = forward
    with unittest.mock.patch("app.training.ppo.rollout.distinct_rows", lambda rows: (list(range(len(rows))),) * 2):
        apart = sample()
    assert_same_samples(shared, apart)


def test_distinct_rows_keep_the_first_of_each_and_index_every_row() -> None:
    assert distinct_rows([[1, 2], [1, 2], [3], [1, 2], [3], [4]]) == ([0, 2, 5], [0, 0, 1, 0, 1, 2])
    assert distinct_rows([[1], [2]]) == ([0, 1], [0, 1])


def test_rewards_come_from_a_scorer_or_a_callable_minus_the_safety_penalty() -> None:
    completions = [Completion("p", f"r{i}", [1], [2], True) for i in range(3)]

    class Scorer:
        def score(self, pairs: list) -> list[float]:
            return [float(len(prompt) + len(response)) for prompt, response in pairs]

    class Classifier:
        labels = ["quality", "safety"]

        def probabilities(self, pairs: list) -> torch.Tensor:
            return torch.tensor([[0.9, 1.0], [0.9, 0.25], [0.1, 0.0]])[: len(pairs)]

    scores, penalties = score_completions(completions, as_reward_function(Scorer()), Classifier(), 2.0, "safety")
    assert scores.tolist() == [3.0, 3.0, 3.0]
    torch.testing.assert_close(penalties, torch.tensor([0.0, 1.5, 2.0]))  # 2 × P(unsafe) = 2 × (1 − P(safe))
    with pytest.raises(ValueError, match="^safety_head: "):
        score_completions(completions, as_reward_function(Scorer()), Classifier(), 1.0, "harmless")
    with pytest.raises(ValueError, match="^reward: "):
        score_completions(completions, lambda cs: [1.0], None, 0.0, "safety")
    with pytest.raises(TypeError):
        as_reward_function(42)


def test_the_kl_penalty_and_missing_eos_penalty_shape_the_rewards() -> None:
    actor, frozen, tok, config = actor_and_tokenizer()
    rollout = rollout_of(actor, frozen, tok, PROMPTS[:8], max_new_tokens=6)
    rollout.ended[:] = torch.tensor([True, False] * 4)
    config.missing_eos_penalty, config.whiten_advantages, config.lam = 1.0, False, 1.0
    experience, kl = make_experience(rollout, 0.1, config, lambda t: t)
    torch.testing.assert_close(kl, (rollout.logprobs - rollout.ref_logprobs) * rollout.mask)
    total = (rollout.scores - 1.0 * (~rollout.ended).float()) - 0.1 * kl.sum(1)
    torch.testing.assert_close(experience.returns[:, 0], total, atol=1e-5, rtol=0)  # γ = λ = 1: R_0 = Σ r_t


def test_a_tokenizer_whose_pad_is_eos_gets_a_distinct_pad_and_the_model_grows(smollm2_tokenizer) -> None:
    from app.training.core.tiny import tiny_llama

    lm = tiny_llama(smollm2_tokenizer)
    tok = ensure_distinct_pad(smollm2_tokenizer, lm, "<|pad|>")
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    assert smollm2_tokenizer.pad_token_id == smollm2_tokenizer.eos_token_id  # the caller's tokenizer is untouched
    assert lm.get_input_embeddings().num_embeddings == len(tok) and lm.config.pad_token_id == tok.pad_token_id


def test_prompts_are_encoded_as_the_policy_sees_them(smollm2_tokenizer) -> None:
    messages = [{"role": "user", "content": "How do I fix a bike?"}]
    [chat, ids, text] = encode_prompts(smollm2_tokenizer, [messages, [5, 6, 7], "Hello there"], max_length=64)
    expected = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert smollm2_tokenizer.decode(chat) == expected and ids == [5, 6, 7]
    assert encode_prompts(smollm2_tokenizer, [messages], max_length=4)[0] == chat[-4:]  # keeps the end
    padded, mask = left_pad([[9] * 5, text], pad_id=0, device=CPU)
    assert padded.shape == mask.shape == (2, 5) and len(text) < 5 and mask[0].all()
    assert padded[1, -len(text) :].tolist() == text and mask[1].tolist() == [0] * (5 - len(text)) + [1] * len(text)
    with pytest.raises(ValueError, match="^prompts: "):
        encode_prompts(smollm2_tokenizer, [""], max_length=8)


def test_cross_process_statistics_equal_the_single_process_ones() -> None:
    torch.manual_seed(0)
    values, mask = torch.randn(4, 7), (torch.rand(4, 7) > 0.3).float()
    torch.testing.assert_close(whiten_across(values, mask, lambda t: t), masked_whiten(values, mask))
    two = [
        whiten_across(values[rows], mask[rows], lambda t, rows=rows: _sum_halves(values, mask, t, rows))
        for rows in (slice(0, 2), slice(2, 4))
    ]
    torch.testing.assert_close(torch.cat(two), masked_whiten(values, mask))
    logits, labels = torch.randn(2, 3, 11), torch.randint(0, 11, (2, 3))
    torch.testing.assert_close(token_logprobs(logits, labels), logprobs_from_logits(logits, labels))


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_logprobs_and_gradients_equal_the_plain_ones(chunk: int) -> None:
    torch.manual_seed(0)
    hidden, weight = torch.randn(10, 8, requires_grad=True), torch.randn(50, 8, requires_grad=True)
    tokens, upstream = torch.randint(0, 50, (10,)), torch.randn(10)
    plain = torch.log_softmax(hidden @ weight.T, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
    expected = torch.autograd.grad((plain * upstream).sum(), (hidden, weight))
    chunked = ChunkedTokenLogprobs.apply(hidden, weight, tokens, chunk)
    torch.testing.assert_close(chunked, plain)
    for got, want in zip(torch.autograd.grad((chunked * upstream).sum(), (hidden, weight)), expected, strict=True):
        torch.testing.assert_close(got, want)
    frozen = weight.detach()  # a LoRA policy's head: the softmax part of ∂/∂h is summed in the forward pass
    chunked = ChunkedTokenLogprobs.apply(hidden, frozen, tokens, chunk)
    (got,) = torch.autograd.grad((chunked * upstream).sum(), hidden)
    torch.testing.assert_close(got, expected[0])


def _sum_halves(values: torch.Tensor, mask: torch.Tensor, local: torch.Tensor, rows: slice) -> torch.Tensor:
    """What an all-reduce over two processes holding rows 0–1 and 2–3 would return."""
    other = slice(2, 4) if rows.start == 0 else slice(0, 2)
    m = mask[other]
    if local.dim() == 1:  # [Σ x, n]
        return local + torch.stack([(values[other] * m).sum(), m.sum()])
    mean = (values * mask).sum() / mask.sum()
    return local + ((values[other] - mean) ** 2 * m).sum()


def test_each_pass_over_the_prompts_uses_every_prompt_once() -> None:
    batches = [prompt_indices(10, 4, seed=1, update=u) for u in range(5)]  # 20 slots = two passes of 10
    flat = [i for batch in batches for i in batch]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert flat[:10] != flat[10:] and batches[3] == prompt_indices(10, 4, seed=1, update=3)


@pytest.mark.parametrize("use_lora", [True, False])
def test_rows_sampled_in_two_streams_are_what_one_stream_samples(use_lora: bool) -> None:
    """The rows split in two parts decoded on two threads at once (``app.generation.streams``): the same tokens,
    log-probs, entropies and values, the shorter part padded as one batch pads after EOS."""
    actor, _, tok, _ = actor_and_tokenizer(use_lora=use_lora)
    with torch.no_grad():  # make EOS likely so that the parts end at different lengths
        actor.causal_lm.lm_head.weight[tok.eos_token_id] *= 0.0
        actor.causal_lm.lm_head.weight[tok.eos_token_id] += actor.causal_lm.model.norm.weight.sign() * 0.02
    repeated = [prompt for prompt in PROMPTS[:5] for _ in range(3)]
    prompt_ids, prompt_mask = left_pad(encode_prompts(tok, repeated, 64), tok.pad_token_id, CPU)
    parts_seen: list[int] = []
    real_parts = rollout_module.row_parts

    def sample(streams: int):
        def parts(ids: torch.Tensor, _: int) -> list[slice]:
            found = real_parts(ids, streams)
            parts_seen.append(len(found))
            return found

        with unittest.mock.patch.object(rollout_module, "row_parts", parts):
            return sampled_rows(actor, tok, prompt_ids, prompt_mask, seed=3, max_new_tokens=12)

    one, two = sample(1), sample(2)
    assert parts_seen == [1, 2]
    assert (one.mask.sum(1) < 12).any()
    assert_same_samples(one, two)


def test_row_parts_are_near_equal_and_cut_where_the_prompt_changes() -> None:
    ids = torch.tensor([[1], [1], [1], [2], [2], [3], [3], [3]])  # runs of 3, 2 and 3 copies

    assert row_parts(ids, 2) == [slice(0, 5), slice(5, 8)]  # the middle (4) would split the 2s: cut after them
    assert row_parts(ids, 3) == [slice(0, 3), slice(3, 5), slice(5, 8)]
    assert row_parts(ids, 1) == [slice(0, 8)]
    assert row_parts(torch.tensor([[4], [4], [4]]), 2) == [slice(0, 3)]  # one prompt: one part
    assert row_parts(torch.tensor([[1], [2]]), 4) == [slice(0, 1), slice(1, 2)]  # never an empty part


def test_parts_of_different_lengths_are_joined_as_one_batch_pads_after_eos() -> None:
    def part(tokens: list[list[int]], values: bool) -> Sampled:
        t = torch.tensor(tokens)
        live = torch.ones_like(t, dtype=torch.float)
        return Sampled(t, live, -live, live * 2, live * 3 if values else None)

    for values in (True, False):
        joined = rollout_module._joined([part([[5, 6, 7]], values), part([[8], [9]], values)], pad_id=4)

        assert joined.tokens.tolist() == [[5, 6, 7], [8, 4, 4], [9, 4, 4]]
        assert joined.mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
        assert joined.logprobs.tolist() == [[-1, -1, -1], [-1, 0, 0], [-1, 0, 0]]
        assert joined.entropy.tolist() == [[2, 2, 2], [2, 0, 0], [2, 0, 0]]
        assert (joined.values is None) == (not values)
        if values:
            assert joined.values.tolist() == [[3, 3, 3], [3, 0, 0], [3, 0, 0]]
