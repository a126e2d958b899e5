"""Shared-prefix packing: a causal model reads a pair's common prompt once, not twice.

Chosen and rejected answers to one prompt begin with the same tokens (the prompt, often a few words of
the answer too). In a causal decoder a token's state depends only on the tokens before it, so those
states are identical on both sides. One row per pair holds the common prefix, then the chosen suffix,
then the rejected suffix; a block mask lets each suffix see the prefix and itself (causally) but never
the other suffix, and position ids restart the rejected suffix where the prefix ends. Every token then
sees exactly the context, at exactly the positions, it would see alone, so the rewards are the same
(up to float rounding) for about a quarter fewer tokens, and no padding between the two sides.

    row:   p0 p1 p2 | c0 c1 c2 c3 | r0 r1 | pad
    pos:    0  1  2 |  3  4  5  6 |  3  4 |  0
    reads:                     ^        ^

Only decoders with last-token pooling can share a prefix (an encoder's prompt states depend on the
answer), and only backbones that honour a 4-D mask and position ids; :func:`shares_prefix_exactly`
checks that on real rows before a run relies on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from app.training.core.batches import pair_extras

PREFIX, CHOSEN, REJECTED, PAD = 0, 1, 2, 3  # what each position of a packed row holds
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "read_rows", "read_cols")


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two id lists, leaving each at least one token of its own."""
    limit = min(len(a), len(b)) - 1
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def packed_length(row: dict[str, Any]) -> int:
    """Tokens of a pair packed into one row: prefix + chosen suffix + rejected suffix."""
    chosen, rejected = row["chosen"]["input_ids"], row["rejected"]["input_ids"]
    return len(chosen) + len(rejected) - shared_prefix_length(chosen, rejected)


class SharedPrefixCollator:
    """Packs B encoded pairs into B rows; the model reads 2B rewards (B chosen, then B rejected)."""

    def __init__(self, pad_id: int, *, additive: bool = False) -> None:
        self.pad_id = pad_id
        self.additive = additive  # eager attention adds its mask; SDPA takes a boolean one (any dtype)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        n, width = len(items), max(packed_length(item) for item in items)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)  # [B, W]
        positions = np.zeros((n, width), dtype=np.int64)  # [B, W]
        segments = np.full((n, width), PAD, dtype=np.int8)  # [B, W]: PREFIX, CHOSEN, REJECTED or PAD
        ends = np.zeros((2, n), dtype=np.int64)  # where the chosen / rejected reward is read
        for i, item in enumerate(items):
            ends[:, i] = self._pack_row(item, ids[i], positions[i], segments[i])
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": packed_attention(segments, additive=self.additive),
            "position_ids": torch.from_numpy(positions),
            "read_rows": torch.arange(n).repeat(2),
            "read_cols": torch.from_numpy(ends.reshape(-1)),
            **pair_extras(items),
        }

    @staticmethod
    def _pack_row(item: dict, ids: np.ndarray, positions: np.ndarray, segments: np.ndarray) -> tuple[int, int]:
        """Fill one row (ids, positions, segments); return the chosen and rejected read positions."""
        chosen, rejected = item["chosen"]["input_ids"], item["rejected"]["input_ids"]
        p = shared_prefix_length(chosen, rejected)
        c, r = len(chosen) - p, len(rejected) - p
        ids[: p + c] = chosen
        ids[p + c : p + c + r] = rejected[p:]
        positions[: p + c] = np.arange(p + c)
        positions[p + c : p + c + r] = np.arange(p, p + r)
        segments[:p], segments[p : p + c], segments[p + c : p + c + r] = PREFIX, CHOSEN, REJECTED
        return p + c - 1, p + c + r - 1


def block_mask(segments: np.ndarray) -> np.ndarray:
    """[B, W, W] attention of packed rows, True attends: causal, and a suffix sees the prefix and itself
    but never the other suffix; a pad sees only itself (no empty softmax row), and no one sees a pad."""
    width = segments.shape[1]
    query, key = segments[:, :, None], segments[:, None, :]  # [B, W, 1], [B, 1, W]
    causal = np.tri(width, dtype=bool)  # [W(query), W(key)]: key ≤ query
    allowed = causal & ((key == PREFIX) | (key == query)) & (query != PAD)
    allowed[:, np.arange(width), np.arange(width)] = True
    return allowed


def packed_attention(segments: np.ndarray, *, additive: bool) -> torch.Tensor:
    """The 4-D mask [B, 1, W, W] of packed rows: boolean (True attends) for the fused kernels, or additive
    (0 or the lowest float) for eager attention, which adds its mask to the scores."""
    mask = torch.from_numpy(block_mask(segments)).unsqueeze(1)
    if additive:
        return torch.zeros(mask.shape).masked_fill_(~mask, torch.finfo(torch.float32).min)
    return mask


def can_share_prefix(model: Any) -> bool:
    """Whether ``model`` (a PooledHeadModel) is of the kind that could: a decoder pooled at its last token."""
    return not model.encoder and model.pooling == "last"


def needs_additive_mask(model: Any) -> bool:
    """Eager attention adds the mask to its scores; the fused kernels take a boolean one."""
    return getattr(model.backbone.config, "_attn_implementation", None) == "eager"


@torch.no_grad()
def shares_prefix_exactly(
    model: Any, rows: Sequence[dict], pad_id: int, plain_collate: Any, *, atol: float = 1e-4
) -> bool:
    """Score a few real pairs packed and unpacked; True when the backbone gives the same rewards.

    A backbone that ignores the 4-D mask or the position ids (or rejects them) fails this check, and
    the run falls back to ordinary padded batches instead of training on wrong rewards."""
    if not rows or not can_share_prefix(model):
        return False
    sample, device = list(rows[:4]), next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        collate = SharedPrefixCollator(pad_id, additive=needs_additive_mask(model))
        packed = {k: v.to(device) for k, v in collate(sample).items() if k in MODEL_INPUTS}
        plain = {k: v.to(device) for k, v in plain_collate(sample).items() if k in MODEL_INPUTS}
        return torch.allclose(model(**packed), model(**plain), atol=atol, rtol=1e-3)
    except (TypeError, ValueError, RuntimeError, IndexError):
        return False
    finally:
        model.train(was_training)
