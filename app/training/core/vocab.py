"""Train only the embedding rows the training data uses: the same optimisation, far less work.

A backbone's input embedding is most of a small model (SmolLM2's 49 k × H, MiniLM's 30 k × 384), yet a
reward data set touches a few thousand token ids at most. With a dense embedding gradient every step
still zeroes, clips and AdamW-updates every row. For a row whose token never occurs in the training
data the gradient is zero at every step, so AdamW's moments stay zero and (with weight decay 0) its
update is exactly zero: training the used rows alone is the same optimisation, not an approximation.

So, for the loop's duration, the embedding is swapped for one holding only the used rows, the
pre-tokenised rows are renumbered into it, and afterwards the trained rows are written back into the
full matrix. Weight decay would shrink the unused rows too, so with decay the swap is not made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

MAX_USED_FRACTION = 0.5  # above this the dense update costs little more; keep the model untouched


@dataclass(frozen=True)
class CompactVocab:
    """The used token ids (sorted) and the table that renumbers a full id into its compact one."""

    used: torch.Tensor  # [V'] original ids, ascending
    table: np.ndarray  # [V] compact id per original id; -1 where unused

    def renumber(self, ids: list[int]) -> list[int]:
        return self.table[np.asarray(ids, dtype=np.int64)].tolist()


def input_ids_of(rows: Iterable[Any]) -> Iterator[list[int]]:
    """Every ``input_ids`` list inside encoded rows, however they nest (pairs, labelled responses)."""
    for row in rows:
        if isinstance(row, dict):
            if "input_ids" in row:
                yield row["input_ids"]
            yield from input_ids_of(v for v in row.values() if isinstance(v, dict))


def renumber_rows(rows: list[Any], vocab: CompactVocab) -> list[Any]:
    """Copies of ``rows`` with every ``input_ids`` renumbered into the compact vocabulary."""

    def convert(row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        out = {k: convert(v) if isinstance(v, dict) else v for k, v in row.items()}
        if "input_ids" in row:
            out["input_ids"] = vocab.renumber(row["input_ids"])
        return out

    return [convert(row) for row in rows]


def _embedding(model: nn.Module) -> nn.Embedding | None:
    """The backbone's input embedding, when it is a plain trainable one used nowhere else."""
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if get is not None else None
    if type(embedding) is not nn.Embedding or not embedding.weight.requires_grad:
        return None
    uses = sum(1 for _, p in model.named_parameters(remove_duplicate=False) if p is embedding.weight)
    return embedding if uses == 1 else None  # tied to another module: its other use needs every row


def plan(model: nn.Module, rows: list[Any], *, pad_id: int, weight_decay: float) -> CompactVocab | None:
    """The compact vocabulary for training ``model`` on ``rows``, or None when it would not be exact
    (weight decay, a tied or non-standard embedding) or would save little (most rows used)."""
    embedding = _embedding(model)
    if embedding is None or weight_decay != 0.0:
        return None
    seen = np.zeros(embedding.num_embeddings, dtype=bool)
    seen[pad_id] = True
    for ids in input_ids_of(rows):
        seen[np.asarray(ids, dtype=np.int64)] = True
    used = np.flatnonzero(seen)
    if len(used) > MAX_USED_FRACTION * embedding.num_embeddings:
        return None
    table = np.full(embedding.num_embeddings, -1, dtype=np.int64)
    table[used] = np.arange(len(used))
    return CompactVocab(torch.from_numpy(used), table)


@contextmanager
def compact_embedding(model: nn.Module, vocab: CompactVocab | None) -> Iterator[None]:
    """Swap ``model``'s input embedding for its used rows; write them back when the block ends.

    The rows are written back however the block ends, so a model stopped mid-run is whole too."""
    if vocab is None:
        yield
        return
    full = _embedding(model)
    assert full is not None, "plan() accepted this model"
    padding = int(vocab.table[full.padding_idx]) if full.padding_idx is not None else -1
    small = nn.Embedding(
        len(vocab.used),
        full.embedding_dim,
        padding_idx=padding if padding >= 0 else None,
        device=full.weight.device,
        dtype=full.weight.dtype,
    )  # a padding row gets no gradient
    with torch.no_grad():
        small.weight.copy_(full.weight[vocab.used.to(full.weight.device)])
    model.set_input_embeddings(small)
    try:
        yield
    finally:
        full.to(small.weight.device)  # the loop may have moved the model (accelerate) while full was out
        with torch.no_grad():
            full.weight[vocab.used.to(small.weight.device)] = small.weight.detach()
        model.set_input_embeddings(full)
