"""Batching: length-grouped batch order and dynamic padding.

Padding costs compute that buys nothing, so each batch is padded only to its own longest sequence
and examples of similar length are batched together. The batch order is a pure function of
(seed, epoch), which is what lets a resumed run skip exactly the batches it already trained on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from app.training.core.encode import Encoded

MEGABATCH_FACTOR = 50  # sort within windows of 50 batches: little padding, still well shuffled


class LengthGroupedBatchSampler:
    """Lists of example indices, ``batch_size`` at a time, for one process of ``num_replicas``.

    Each epoch: shuffle, cut into windows of ``MEGABATCH_FACTOR`` batches, sort each window by length
    (longest first), cut into batches, then shuffle the batch order so long batches are not all early.
    With ``group_by_length=False`` it is a plain shuffled batcher, in Hugging Face's order for the same
    seed. Every process computes the same list and takes every ``num_replicas``-th batch from ``rank`` on,
    after the list is topped up (with its own first batches) to a multiple of ``num_replicas`` so that all
    processes take the same number of steps.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        group_by_length: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1 or not 0 <= rank < num_replicas:
            raise ValueError("batch_size must be ≥ 1 and 0 ≤ rank < num_replicas")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.num_replicas, self.rank = num_replicas, rank

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every process's batches of one epoch, deterministic in (seed, epoch)."""
        if not self.group_by_length:
            # The order of Hugging Face's seedable sampler (torch.randperm seeded with seed + epoch): with the
            # same seed, a plain shuffled run trains on the very batches a Trainer or TRL run would.
            order = torch.randperm(len(self.lengths), generator=torch.Generator().manual_seed(self.seed + epoch))
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        window = self.batch_size * MEGABATCH_FACTOR
        batches: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of one epoch."""
        batches = self.all_batches(epoch)
        short = -len(batches) % self.num_replicas
        batches = batches + [batches[i % len(batches)] for i in range(short)]
        return batches[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        """Batches (optimizer steps) per epoch for this process."""
        per_epoch = (len(self.lengths) + self.batch_size - 1) // self.batch_size  # ceil: the last batch may be short
        return (per_epoch + self.num_replicas - 1) // self.num_replicas  # ceil: the list is topped up to a multiple


def pad_sequences(rows: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ``rows`` to their longest member: input_ids, attention_mask (and token_type_ids).

    Filled through numpy, which copies a Python list into a row ~8x faster than ``torch.tensor``
    builds one: on tiny models the collate would otherwise rival the forward pass."""
    width = max(len(row["input_ids"]) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)  # [N, T]
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)  # [N, T]
    segments = np.zeros((len(rows), width), dtype=np.int64) if "token_type_ids" in rows[0] else None
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        input_ids[i, :n] = row["input_ids"]
        attention_mask[i, :n] = 1
        if segments is not None:
            segments[i, :n] = row["token_type_ids"]
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}
    if segments is not None:
        batch["token_type_ids"] = torch.from_numpy(segments)
    return batch


def pair_extras(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Per-pair values beside the tokens, [B] each: the margin, and 1 where the pair was judged a tie."""
    return {
        "margin": torch.tensor([item["margin"] for item in items], dtype=torch.float32),
        "tie": torch.tensor([item.get("tie", 0.0) for item in items], dtype=torch.float32),
    }


class PairCollator:
    """Collates encoded pairs into ONE padded batch: the B chosen rows, then the B rejected rows, so the
    model scores both sides in a single forward pass; plus the per-pair margin and tie flag."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        rows = [item["chosen"] for item in items] + [item["rejected"] for item in items]
        return {**pad_sequences(rows, self.pad_id), **pair_extras(items)}  # tokens [2B, T]


class LabelledCollator:
    """Collates encoded responses with their labels [B, H] and a mask [B, H] of which labels exist."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = pad_sequences([item["encoded"] for item in items], self.pad_id)
        batch["labels"] = torch.tensor([item["labels"] for item in items], dtype=torch.float32)
        batch["label_mask"] = torch.tensor([item["label_mask"] for item in items], dtype=torch.float32)
        return batch
