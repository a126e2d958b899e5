"""Preference pairs as token ids, batches of them, and the sequence log-probs DPO compares.

A prompt is encoded exactly as the policy sees it when it generates (PPO's ``encode_prompts``: the chat
template with the generation prompt, the last ``max_prompt_length`` tokens), and a response as its own
tokens followed by EOS, the end-of-turn the policy emits when it stops. So DPO trains on the very
sequences the policy would produce, whether the pair came from the judged pool or from online sampling.

A batch holds 2B sequences, the B chosen then the B rejected, laid out like PPO's rollouts
``[left-padded prompt | right-padded response]``, so one forward reads both sides of every pair and the
states predicting the response are the slice ``[-T - 1 : -1]``. Where the policy honours a 4-D attention
mask and explicit positions (checked on real rows: :func:`pair_collator`), the two sides of a pair share
one row instead, ``[prompt | chosen | rejected]`` (``core.prefix``'s block mask: each answer sees the prompt
and itself), so the prompt is computed once, not twice, and no prompt is padded to another's length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from app.generation.transformers_backend import left_pad
from app.training.core.batches import pad_sequences
from app.training.core.data import PreferenceExample
from app.training.core.prefix import CHOSEN, PAD, PREFIX, REJECTED, packed_attention
from app.training.ppo.rollout import encode_prompts
from app.training.reward.loss import strength_margins

PairRow = dict[str, Any]  # prompt, chosen, rejected: token ids; margin: float; ref_chosen, ref_rejected: floats


def pair_row(prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int], margin: float = 0.0) -> PairRow:
    return {"prompt": list(prompt), "chosen": list(chosen), "rejected": list(rejected), "margin": float(margin)}


def response_ids(tokenizer: Any, text: str, max_length: int) -> list[int]:
    """The response's tokens and EOS, the first ``max_length`` of them (a cut answer loses its EOS)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id][:max_length]


def encode_pairs(
    tokenizer: Any,
    examples: Sequence[PreferenceExample],
    *,
    max_prompt_length: int,
    max_response_length: int,
    strength_margin: float = 0.0,
) -> list[PairRow]:
    """One row per judged pair; its margin from the strength, as the reward model's."""
    prompts = encode_prompts(tokenizer, [ex.prompt for ex in examples], max_prompt_length)
    margins = strength_margins([ex.strength for ex in examples], strength_margin)
    return [
        pair_row(
            prompt,
            response_ids(tokenizer, ex.chosen, max_response_length),
            response_ids(tokenizer, ex.rejected, max_response_length),
            margin,
        )
        for ex, prompt, margin in zip(examples, prompts, margins, strict=True)
    ]


def row_length(row: PairRow) -> int:
    """Tokens of the row's longer side: what a batch of it pads to."""
    return len(row["prompt"]) + max(len(row["chosen"]), len(row["rejected"]))


class DPOCollator:
    """Rows → a batch of 2B sequences (chosen first) with the response mask, margins and reference log-probs."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    @staticmethod
    def length(row: PairRow) -> int:
        """What the row costs a batch: its prompt and its longer side (the other side is padded to it)."""
        return row_length(row)

    def __call__(self, rows: Sequence[PairRow]) -> dict[str, torch.Tensor]:
        prompt_ids, prompt_mask = left_pad([row["prompt"] for row in rows] * 2, self.pad_id)  # [2B, P]
        responses = pad_sequences(
            [{"input_ids": row[side]} for side in ("chosen", "rejected") for row in rows], self.pad_id
        )  # [2B, T]
        tokens, mask = responses["input_ids"], responses["attention_mask"]
        return {
            "input_ids": torch.cat([prompt_ids, tokens], 1),
            "attention_mask": torch.cat([prompt_mask, mask], 1),
            "tokens": tokens,
            "mask": mask,
            **pair_values(rows),
        }


class PackedDPOCollator:
    """Rows → B rows ``[prompt | chosen | rejected]`` that the policy reads as the 2B sequences of
    :class:`DPOCollator` (the same keys, plus the positions and where each response token is predicted).

    ``read_cols`` [2B, T]: the position whose state predicts each response token, the prompt's last token
    for both first tokens; ``read_rows`` [2B]: the row of each sequence."""

    def __init__(self, pad_id: int, *, additive: bool = False) -> None:
        self.pad_id = pad_id
        self.additive = additive  # eager attention adds its mask; SDPA takes a boolean one

    @staticmethod
    def length(row: PairRow) -> int:
        return len(row["prompt"]) + len(row["chosen"]) + len(row["rejected"])

    def __call__(self, rows: Sequence[PairRow]) -> dict[str, torch.Tensor]:
        n, width = len(rows), max(self.length(row) for row in rows)
        longest = max(len(row[side]) for row in rows for side in ("chosen", "rejected"))
        ids = np.full((n, width), self.pad_id, dtype=np.int64)  # [B, W]
        positions = np.zeros((n, width), dtype=np.int64)  # [B, W]
        segments = np.full((n, width), PAD, dtype=np.int8)  # [B, W]
        tokens = np.full((2, n, longest), self.pad_id, dtype=np.int64)  # [2, B, T]: chosen, rejected
        mask = np.zeros((2, n, longest), dtype=np.int64)
        reads = np.zeros((2, n, longest), dtype=np.int64)
        for i, row in enumerate(rows):
            prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
            p, c, r = len(prompt), len(chosen), len(rejected)
            if not p:
                raise ValueError("a packed pair needs a prompt token: the state before the first answer token")
            ids[i, :p], ids[i, p : p + c], ids[i, p + c : p + c + r] = prompt, chosen, rejected
            positions[i, : p + c], positions[i, p + c : p + c + r] = np.arange(p + c), np.arange(p, p + r)
            segments[i, :p], segments[i, p : p + c], segments[i, p + c : p + c + r] = PREFIX, CHOSEN, REJECTED
            tokens[0, i, :c], tokens[1, i, :r] = chosen, rejected
            mask[0, i, :c], mask[1, i, :r] = 1, 1
            reads[0, i, :c] = np.arange(p - 1, p + c - 1)
            reads[1, i, :r] = np.concatenate(([p - 1], np.arange(p + c, p + c + r - 1)))
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": packed_attention(segments, additive=self.additive),
            "position_ids": torch.from_numpy(positions),
            "read_rows": torch.arange(n).repeat(2),
            "read_cols": torch.from_numpy(reads.reshape(2 * n, longest)),
            "tokens": torch.from_numpy(tokens.reshape(2 * n, longest)),
            "mask": torch.from_numpy(mask.reshape(2 * n, longest)),
            **pair_values(rows),
        }


PairCollate = DPOCollator | PackedDPOCollator
PACKED_INPUTS = ("position_ids", "read_rows", "read_cols")  # what a packed batch adds to the policy's call


def pair_values(rows: Sequence[PairRow]) -> dict[str, torch.Tensor]:
    """The margins [B] and, once computed, the reference log-probs [2B] (chosen first) of a batch of rows."""
    values = {"margin": torch.tensor([row["margin"] for row in rows])}
    if all("ref_chosen" in row for row in rows):
        values["ref"] = torch.tensor([row["ref_chosen"] for row in rows] + [row["ref_rejected"] for row in rows])
    return values


@torch.no_grad()
def pair_collator(model: Any, rows: Sequence[PairRow], pad_id: int, *, atol: float = 1e-3) -> PairCollate:
    """The packed collator when ``model`` reads a few of ``rows`` packed as it reads them padded, else the
    padded one: a backbone that ignores the 4-D mask or the positions (or refuses them) must not train on
    log-probs of the wrong context."""
    plain = DPOCollator(pad_id)
    sample = list(rows[:4])
    if not sample:
        return plain
    lm = getattr(model, "causal_lm", None)
    eager = getattr(getattr(lm, "config", None), "_attn_implementation", None) == "eager"
    packed = PackedDPOCollator(pad_id, additive=eager)
    device, was_training = next(model.parameters()).device, model.training
    model.eval()
    try:
        batches = [{k: v.to(device) for k, v in collate(sample).items()} for collate in (plain, packed)]
        expected, got = (sequence_logprobs(model, batch) for batch in batches)
        return packed if torch.allclose(got, expected, atol=atol, rtol=1e-4) else plain
    except (TypeError, ValueError, RuntimeError, IndexError):
        return plain
    finally:
        model.train(was_training)


def sequence_logprobs(model: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log π(token) over each sequence's response tokens only. [2B]."""
    packed = {key: batch[key] for key in PACKED_INPUTS if key in batch}
    logprobs = model(batch["input_ids"], batch["attention_mask"], batch["tokens"], **packed)  # [2B, T]
    return (logprobs * batch["mask"].to(logprobs.dtype)).sum(-1)


@torch.no_grad()
def add_reference_logprobs(
    reference: Callable[..., torch.Tensor],
    rows: Sequence[PairRow],
    collate: PairCollate,
    batch_size: int,
    device: torch.device | str,
) -> None:
    """Store log π_ref of both sides in each row: π_ref is frozen, so once per pair is enough."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        chosen, rejected = sequence_logprobs(reference, batch).float().cpu().split(len(chunk))
        for row, c, r in zip(chunk, chosen.tolist(), rejected.tolist(), strict=True):
            row["ref_chosen"], row["ref_rejected"] = c, r
