"""Preference pairs as token ids, batches of them, and the sequence log-probs DPO compares.

A prompt is encoded exactly as the policy sees it when it generates (PPO's ``encode_prompts``: the chat
template with the generation prompt, the last ``max_prompt_length`` tokens), and a response as its own
tokens followed by EOS, the end-of-turn the policy emits when it stops. So DPO trains on the very
sequences the policy would produce, whether the pair came from the judged pool or from online sampling.

A batch holds 2B sequences, the B chosen then the B rejected, laid out like PPO's rollouts
``[left-padded prompt | right-padded response]``, so one forward reads both sides of every pair and the
states predicting the response are the slice ``[-T - 1 : -1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from app.generation.transformers_backend import left_pad
from app.training.core.batches import pad_sequences
from app.training.core.data import PreferenceExample
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

    def __call__(self, rows: Sequence[PairRow]) -> dict[str, torch.Tensor]:
        prompt_ids, prompt_mask = left_pad([row["prompt"] for row in rows] * 2, self.pad_id)  # [2B, P]
        responses = pad_sequences(
            [{"input_ids": row[side]} for side in ("chosen", "rejected") for row in rows], self.pad_id
        )  # [2B, T]
        tokens, mask = responses["input_ids"], responses["attention_mask"]
        batch = {
            "input_ids": torch.cat([prompt_ids, tokens], 1),
            "attention_mask": torch.cat([prompt_mask, mask], 1),
            "tokens": tokens,
            "mask": mask,
            "margin": torch.tensor([row["margin"] for row in rows]),
        }
        if all("ref_chosen" in row for row in rows):
            batch["ref"] = torch.tensor([row["ref_chosen"] for row in rows] + [row["ref_rejected"] for row in rows])
        return batch


def sequence_logprobs(model: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log π(token) over each sequence's response tokens only. [2B]."""
    logprobs = model(batch["input_ids"], batch["attention_mask"], batch["tokens"])  # [2B, T]
    return (logprobs * batch["mask"].to(logprobs.dtype)).sum(-1)


@torch.no_grad()
def add_reference_logprobs(
    reference: Callable[..., torch.Tensor],
    rows: Sequence[PairRow],
    collate: DPOCollator,
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
