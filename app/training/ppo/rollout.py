"""Rollouts: sample responses, score them, and record what PPO needs to learn from them.

Sampling runs the policy's trunk with a KV cache, a whole batch at a time (prompts left-padded, each
distinct prompt prefilled once however many answers it gets), and reads log π_old, the entropy and V off
the same pass, so a rollout costs one incremental generation, one reference forward and the reward
function. Each response is sampled with its own random stream, seeded by (seed, update, global row): the
samples do not depend on how the batch is split across processes.

    rewards = as_reward_function(RewardScorer("/models/reward-3"))  # or any callable on completions
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from app.generation.kv_cache import reserved_cache
from app.generation.sampling import inverse_cdf
from app.generation.streams import in_streams, streams_for
from app.generation.transformers_backend import left_pad
from app.training.core.data import Prompt
from app.training.core.encode import render_prompt
from app.training.core.lora import adapters_merged
from app.training.ppo.policy import ActorCritic, cache_kwarg, position_ids

PromptInput = Prompt | Sequence[int]  # text, chat messages, or token ids


@dataclass
class Completion:
    """One sampled response as a reward function sees it."""

    prompt: Prompt  # as given (text or messages); decoded text when the prompt came as token ids
    response: str  # decoded, without EOS or padding
    prompt_ids: list[int]
    response_ids: list[int]  # the kept tokens, EOS included when the response ended with one
    ended: bool  # True when the response ended with EOS (False: cut at the length limit)


class RewardFunction(Protocol):
    """Scores a batch of completions, one float each, in order."""

    def __call__(self, completions: Sequence[Completion]) -> Sequence[float]: ...


def as_reward_function(reward: Any) -> RewardFunction:
    """A reward function from a scorer with ``score([(prompt, response), …])`` (e.g. RewardScorer) or a callable."""
    if hasattr(reward, "score"):
        return lambda completions: reward.score([(c.prompt, c.response) for c in completions])
    if callable(reward):
        return reward
    raise TypeError("reward must be a callable on completions or have a score(pairs) method")


Scorer = Callable[[Sequence[Completion]], tuple[torch.Tensor, torch.Tensor]]  # → (scores [B], penalties [B])


def unsafe_probability(classifier: Any, completions: Sequence[Completion], head: str) -> torch.Tensor:
    """P(unsafe) = 1 − P(head = 1) per completion, from a ClassifierScorer-like object. [B]."""
    if head not in classifier.labels:
        raise ValueError(f"safety_head: the classifier has no head {head!r} (it has {classifier.labels})")
    probs = classifier.probabilities([(c.prompt, c.response) for c in completions])  # [B, H]
    return 1.0 - probs[:, classifier.labels.index(head)].float()


def encode_prompts(tokenizer: Any, prompts: Sequence[PromptInput], max_length: int) -> list[list[int]]:
    """Token ids of each prompt as the policy sees it (chat template with the generation prompt), keeping
    the last ``max_length`` tokens, since the end is where the answer starts."""
    encoded = []
    for i, prompt in enumerate(prompts):
        if _is_token_ids(prompt):
            ids = [int(t) for t in prompt]
        else:
            text = render_prompt(tokenizer, prompt, encoder=False)
            ids = tokenizer(text, add_special_tokens=isinstance(prompt, str))["input_ids"]
        if not ids:
            raise ValueError(f"prompts: prompt {i} is empty")
        encoded.append(ids[-max_length:])
    return encoded


def _is_token_ids(prompt: Any) -> bool:
    return not isinstance(prompt, str) and len(prompt) > 0 and all(isinstance(t, int) for t in prompt)


def row_generators(seed: int, first_row: int, n: int, device: torch.device) -> list[torch.Generator]:
    """One random stream per response, keyed by its global row number (update × batch + index)."""
    return [torch.Generator(device=device).manual_seed(seed * 1_000_003 + first_row + i) for i in range(n)]


@dataclass
class Sampled:
    """What sampling recorded per response token ([B, T]; after EOS: pad tokens, mask 0)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor  # log π_old(token), tempered
    entropy: torch.Tensor  # of the tempered distribution the token was drawn from
    values: torch.Tensor | None  # V(s_t) from the value head; None with a separate value model


def _draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row by inverse-CDF sampling, u ~ U(0, 1) from the row's own stream. [B, V] → [B].

    One uniform number per row instead of one per vocabulary entry, and the draw of a row does not depend
    on the other rows (:func:`~app.generation.sampling.inverse_cdf`)."""
    u = torch.cat([torch.rand(1, generator=g, device=probs.device, dtype=torch.float64) for g in generators])
    return inverse_cdf(probs, u)


def _sample_step(logits: torch.Tensor, generators: list[torch.Generator]) -> tuple[torch.Tensor, ...]:
    """(token [B], log p(token) [B], entropy [B]) of one step's tempered logits [B, V].

    From log Σ exp(logits) and one exp pass: p = exp(logits − lse), log p(token) = logit − lse and
    H = lse − Σ p·logit, rather than a log-softmax tensor, its exp and their product (fewer passes over
    the vocabulary-sized rows, each step of every sampled token)."""
    lse = torch.logsumexp(logits, dim=-1)  # [B]
    probs = (logits - lse[:, None]).exp_()  # [B, V]
    token = _draw(probs, generators)
    entropy = lse - torch.linalg.vecdot(probs, logits)
    return token, logits.gather(-1, token[:, None]).squeeze(-1) - lse, entropy


@torch.no_grad()
def sample_responses(
    actor: ActorCritic,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    generators: list[torch.Generator],
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
) -> Sampled:
    """Sample up to ``max_new_tokens`` per prompt with a KV cache; a response ends at its first EOS. LoRA
    adapters are merged into the weights meanwhile (``adapters_merged``). On a CPU the rows are decoded in
    two parts at once (``app.generation.streams``), a prompt's copies kept in one part so that they share
    its prefill; each row draws from its own generator, so the split changes no draw."""
    parts = row_parts(prompt_ids, streams_for(prompt_ids.device))
    with adapters_merged(actor.lm):
        tasks = [
            functools.partial(
                _sample_rows, actor, (prompt_ids[p], prompt_mask[p], generators[p]), max_new_tokens, eos_id, pad_id
            )
            for p in parts
        ]
        sampled = in_streams(tasks, len(parts))
    return sampled[0] if len(sampled) == 1 else _joined(sampled, pad_id)


def row_parts(prompt_ids: torch.Tensor, parts: int) -> list[slice]:
    """Up to ``parts`` contiguous, near-equal slices of the rows, each cut where the prompt changes (a cut
    that would split a run of one prompt's copies moves to the run's end)."""
    rows = prompt_ids.shape[0]
    if parts <= 1 or rows < 2:
        return [slice(0, rows)]
    changes = [0, *((prompt_ids[1:] != prompt_ids[:-1]).any(-1).nonzero().squeeze(-1) + 1).tolist(), rows]
    cuts = [0]
    for i in range(1, parts):
        cut = next(c for c in changes if c >= max(cuts[-1] + 1, round(i * rows / parts)))
        if cut < rows:
            cuts.append(cut)
    return [slice(a, b) for a, b in zip(cuts, [*cuts[1:], rows], strict=True)]


def _joined(parts: Sequence[Sampled], pad_id: int) -> Sampled:
    """The parts' rows in order, each padded (pad tokens, zeros elsewhere) to the longest part's length."""
    width = max(part.tokens.shape[1] for part in parts)

    def padded(tensors: list[torch.Tensor], value: float) -> torch.Tensor:
        return torch.cat([F.pad(t, (0, width - t.shape[1]), value=value) for t in tensors])

    values = None if parts[0].values is None else padded([part.values for part in parts], 0.0)
    return Sampled(
        padded([part.tokens for part in parts], pad_id),
        padded([part.mask for part in parts], 0.0),
        padded([part.logprobs for part in parts], 0.0),
        padded([part.entropy for part in parts], 0.0),
        values,
    )


RowPart = tuple[torch.Tensor, torch.Tensor, list[torch.Generator]]  # prompt ids, prompt mask, generators


def _sample_rows(actor: ActorCritic, part: RowPart, max_new_tokens: int, eos_id: int, pad_id: int) -> Sampled:
    """:func:`sample_responses` for one part of the rows, the adapters already merged."""
    prompt_ids, prompt_mask, generators = part
    trunk, cache_name = actor.trunk, cache_kwarg(actor.trunk)
    mask, positions = prompt_mask, position_ids(prompt_mask)
    cache, hidden = _prefill(trunk, prompt_ids, mask, positions, reserve=max_new_tokens)
    next_position = positions[:, -1] + 1  # [B]
    done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=prompt_ids.device)
    steps: list[tuple[torch.Tensor, ...]] = []
    for t in range(max_new_tokens):
        token, logp, entropy = _sample_step(actor.logits(hidden), generators)
        token = torch.where(done, pad_id, token)  # [B]
        live = ~done
        value = actor.values(hidden) if actor.value_model is None else torch.zeros_like(live, dtype=logp.dtype)
        steps.append((token, live, logp, entropy, value))
        done = done | (token == eos_id)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        mask = torch.cat([mask, live[:, None].long()], dim=1)
        out = trunk(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=(next_position + t)[:, None],
            use_cache=True,
            **{cache_name: cache},
        )
        hidden = out.last_hidden_state[:, -1]
    tokens, live, logprobs, entropy, values = (torch.stack(column, dim=1) for column in zip(*steps, strict=True))
    live = live.float()
    return Sampled(tokens, live, logprobs * live, entropy * live, values * live if actor.value_model is None else None)


def _prefill(
    trunk: Any, prompt_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, *, reserve: int = 0
) -> tuple[Any, torch.Tensor]:
    """(the KV cache of every row's prompt, the last prompt position's hidden state [B, H]), each distinct
    prompt run through the trunk once.

    RLOO and online DPO sample k answers to each prompt, so a batch holds every prompt k times; their prompts
    (chat template and system prompt included) are about as long as the answers, and running each copy was
    half the sampling work. The copies' KV caches are equal, so one forward per distinct row and an index
    into its cache give every row what its own forward would have."""
    keep, index = distinct_rows(torch.cat([prompt_ids, mask.to(prompt_ids.dtype)], dim=1).tolist())
    inverse = None
    if len(keep) < len(index):
        inverse = torch.tensor(index, device=prompt_ids.device)
        rows = torch.tensor(keep, device=prompt_ids.device)
        prompt_ids, mask, positions = prompt_ids[rows], mask[rows], positions[rows]
    cache = reserved_cache(trunk.config, reserve)  # decoding writes into it: no copy of the cache per step
    out = trunk(
        input_ids=prompt_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{cache_kwarg(trunk): cache},
    )
    hidden = out.last_hidden_state[:, -1]
    if inverse is not None:
        cache.reorder_cache(inverse)
        hidden = hidden[inverse]
    return cache, hidden


def distinct_rows(rows: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """(the first row of each distinct value, in order; per row, its distinct value's place in that list)."""
    slot: dict[tuple[int, ...], int] = {}
    keep: list[int] = []
    index = []
    for i, row in enumerate(rows):
        key = tuple(row)
        if key not in slot:
            slot[key] = len(keep)
            keep.append(i)
        index.append(slot[key])
    return keep, index


@dataclass
class Rollout:
    """One batch of experience. Sequences are [B, P + T]; per-token fields are [B, T]; per-response [B]."""

    input_ids: torch.Tensor  # prompt (left-padded) + response (right-padded)
    attention_mask: torch.Tensor
    mask: torch.Tensor  # 1 on response tokens, float
    logprobs: torch.Tensor  # log π_old
    ref_logprobs: torch.Tensor  # log π_ref
    values: torch.Tensor  # V_old
    entropy: torch.Tensor
    scores: torch.Tensor  # the reward function's score
    penalties: torch.Tensor  # safety_weight × P(unsafe); 0 without a classifier
    ended: torch.Tensor  # bool: the response ended with EOS

    @property
    def response_length(self) -> int:
        return self.mask.shape[1]


@torch.no_grad()
def response_logprobs(
    actor: ActorCritic, input_ids: torch.Tensor, attention_mask: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """log π(token) of each response token, in one forward over prompt + response. [B, T]."""
    hidden = actor.hidden(input_ids, attention_mask)[:, -tokens.shape[1] - 1 : -1]  # [B, T, H]
    return actor.token_logprobs(hidden, tokens)


def decode_completions(
    tokenizer: Any, prompts: Sequence[PromptInput], prompt_rows: Sequence[Sequence[int]], sampled: Sampled
) -> list[Completion]:
    """The reward function's view of each sampled response."""
    completions = []
    lengths = sampled.mask.sum(-1).long().tolist()
    for prompt, ids, row, n in zip(prompts, prompt_rows, sampled.tokens.tolist(), lengths, strict=True):
        kept = row[:n]
        ended = bool(kept) and kept[-1] == tokenizer.eos_token_id
        text = tokenizer.decode(kept[:-1] if ended else kept, skip_special_tokens=True)
        shown = tokenizer.decode(ids, skip_special_tokens=False) if _is_token_ids(prompt) else prompt
        completions.append(Completion(shown, text, list(ids), kept, ended))
    return completions


def score_completions(
    completions: Sequence[Completion], reward: RewardFunction, classifier: Any, safety_weight: float, safety_head: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [B], safety penalties [B]) on the CPU."""
    scores = torch.tensor([float(s) for s in reward(completions)], dtype=torch.float32)
    if scores.shape[0] != len(completions) or not torch.isfinite(scores).all():
        raise ValueError("reward: the reward function must return one finite score per completion")
    penalties = torch.zeros_like(scores)
    if classifier is not None and safety_weight > 0:
        penalties = safety_weight * unsafe_probability(classifier, completions, safety_head).cpu()
    return scores, penalties


def completion_scorer(reward: Any, classifier: Any, safety_weight: float, safety_head: str) -> Scorer:
    """:func:`score_completions` with a run's reward (a function or a scorer) and safety penalty bound."""
    return functools.partial(
        score_completions,
        reward=as_reward_function(reward),
        classifier=classifier,
        safety_weight=safety_weight,
        safety_head=safety_head,
    )


def sample_batch(
    actor: ActorCritic,
    tokenizer: Any,
    prompt_rows: Sequence[Sequence[int]],
    generators: list[torch.Generator],
    max_new_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor, Sampled]:
    """(prompt ids, prompt mask, what sampling recorded): the prompts left-padded on the actor's device and
    one response sampled to each from its own stream."""
    device = next(actor.parameters()).device
    prompt_ids, prompt_mask = left_pad(prompt_rows, tokenizer.pad_token_id, device)
    sampled = sample_responses(
        actor,
        prompt_ids,
        prompt_mask,
        generators,
        max_new_tokens=max_new_tokens,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
    )
    return prompt_ids, prompt_mask, sampled


def collect_rollout(
    actor: ActorCritic,
    frozen_reference: torch.nn.Module | None,
    tokenizer: Any,
    prompts: Sequence[PromptInput],
    prompt_rows: Sequence[Sequence[int]],
    generators: list[torch.Generator],
    max_new_tokens: int,
    score: Scorer,
) -> Rollout:
    """Sample, then take log π_ref (and values from a separate value model) and the scores."""
    prompt_ids, prompt_mask, sampled = sample_batch(actor, tokenizer, prompt_rows, generators, max_new_tokens)
    device = prompt_ids.device
    input_ids = torch.cat([prompt_ids, sampled.tokens], dim=1)  # [B, P + T]
    attention_mask = torch.cat([prompt_mask, sampled.mask.long()], dim=1)
    with actor.reference(frozen_reference) as reference:
        ref_logprobs = response_logprobs(reference, input_ids, attention_mask, sampled.tokens) * sampled.mask
    values = sampled.values
    if values is None:
        with torch.no_grad():
            values = actor.value_model(input_ids, attention_mask)[:, -sampled.tokens.shape[1] - 1 : -1]
        values = values * sampled.mask
    completions = decode_completions(tokenizer, prompts, prompt_rows, sampled)
    scores, penalties = score(completions)
    ended = torch.tensor([c.ended for c in completions], dtype=torch.bool, device=device)
    return Rollout(
        input_ids,
        attention_mask,
        sampled.mask,
        sampled.logprobs,
        ref_logprobs,
        values,
        sampled.entropy,
        scores.to(device),
        penalties.to(device),
        ended,
    )
