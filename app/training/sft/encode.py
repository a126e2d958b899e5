"""Conversations to token ids and labels, with the loss on assistant tokens only.

The model should learn to *answer*, not to predict the user's questions or the template's
markup, so every token outside an assistant turn gets the label ``IGNORE`` (−100, what
``cross_entropy`` skips). Where the assistant turns are is read off the chat template itself,
whatever the model family: for the assistant message at index i,

    start_i = len(render(messages[:i], add_generation_prompt=True))  # "…<|im_start|>assistant\\n"
    end_i   = len(render(messages[:i + 1]))                          # "…answer<|im_end|>\\n"

so the span covers the answer and the template's end-of-turn marker (the model must learn to
stop), never the role header. The full conversation is tokenised once with character offsets and
a token is trained on when it starts inside a span; comparing character positions rather than
prefix token counts stays right when BPE merges a token across a span's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from app.training.sft.data import Message, SFTExample

IGNORE = -100
Encoded = dict[str, list[int]]


class TemplateMismatch(ValueError):
    """The chat template renders a conversation's prefix differently from the start of the whole,
    so assistant spans cannot be located by rendering prefixes."""


def assistant_spans(tokenizer: Any, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span [start, end) of each assistant turn."""
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(upto) or not upto.startswith(head):
            raise TemplateMismatch(
                "the chat template does not render conversations prefix by prefix; assistant tokens cannot be located"
            )
        spans.append((len(head), len(upto)))
    return full, spans


def encode_conversation(tokenizer: Any, messages: Sequence[Message], max_length: int) -> Encoded | None:
    """``input_ids`` and ``labels`` (the id on assistant tokens, ``IGNORE`` elsewhere), cut to
    ``max_length``; None when nothing of an assistant turn survives the cut."""
    text, spans = assistant_spans(tokenizer, messages)
    # The template writes the special tokens itself; adding BOS again would shift every position.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])[:max_length]
    offsets = list(encoded["offset_mapping"])[:max_length]
    labels = [tok if _inside(start, spans) else IGNORE for tok, (start, _end) in zip(ids, offsets, strict=True)]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def _inside(position: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def encode_examples(tokenizer: Any, examples: Sequence[SFTExample], max_length: int) -> tuple[list[Encoded], int]:
    """Encoded rows of ``examples`` and how many were dropped (no assistant token left after the cut)."""
    rows: list[Encoded] = []
    dropped = 0
    for example in examples:
        row = encode_conversation(tokenizer, example.messages, max_length)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped


class SFTCollator:
    """Right-pads a batch: input_ids with the pad id, attention_mask 0 and labels ``IGNORE`` on padding."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)  # [B, T]
        labels = np.full((len(rows), width), IGNORE, dtype=np.int64)  # [B, T]
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)  # [B, T]
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            input_ids[i, :n] = row["input_ids"]
            labels[i, :n] = row["labels"]
            attention_mask[i, :n] = 1
        return {
            "input_ids": torch.from_numpy(input_ids),
            "labels": torch.from_numpy(labels),
            "attention_mask": torch.from_numpy(attention_mask),
        }


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed negative log-likelihood, number of tokens) of the labelled tokens.

    Position t predicts token t+1, so logits drop the last step and labels the first."""
    shifted_logits = logits[:, :-1, :].float()  # [B, T-1, V]
    shifted_labels = labels[:, 1:]  # [B, T-1]
    total = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return total, (shifted_labels != IGNORE).sum()


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L = −(1/N) Σ log π(y_t | y_<t) over the N assistant tokens of the batch."""
    total, count = token_nll(logits, labels)
    return total / count.clamp(min=1)


def sft_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One batch's loss for the shared loop, plus the token count it averaged over."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # [B, T, V]
    loss = sft_loss(logits, batch["labels"])
    return loss, {"loss": loss.detach(), "tokens": (batch["labels"] != IGNORE).sum().float()}


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, rows: Sequence[Encoded], pad_id: int, batch_size: int, device: torch.device | str
) -> float | None:
    """Mean NLL per assistant token over ``rows`` (token-weighted, so batching does not change it)."""
    if not rows:
        return None
    was_training = model.training
    model.eval()
    collate, total, count = SFTCollator(pad_id), torch.zeros((), dtype=torch.float64), 0
    ordered = sorted(rows, key=lambda row: len(row["input_ids"]))  # less padding
    for start in range(0, len(ordered), batch_size):
        batch = {k: v.to(device) for k, v in collate(ordered[start : start + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        nll, n = token_nll(logits, batch["labels"])
        total += nll.double().cpu()
        count += int(n)
    model.train(was_training)
    return float(total / max(count, 1))
