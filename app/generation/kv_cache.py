"""A KV cache that decoding appends to in place, instead of copying every layer's whole cache each step.

transformers' ``DynamicCache`` grows each layer's keys and values with ``torch.cat``: every decoding step
copies the whole cache, 60 tensors for SmolLM2's 30 layers. At 128 rows and a few hundred positions that
was 30 % of a sampling step on this project's CPUs (profiled on ``bench/rollout_sampling.py``'s online
DPO round, 2 threads: 16.4 s of 55 in ``aten::cat``), and the fresh tensors cost page faults besides.
:class:`ReservedLayer` keeps room for ``reserve`` more tokens behind the cached ones and writes each
step's keys and values into it; the layer's ``keys``/``values`` are views of the filled part, so
attention reads exactly what it read before. ``StaticCache`` is no substitute: it attends over its whole
length every step (the rest masked), which costs more than the copies it saves at these lengths.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class ReservedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values live at the front of buffers with room for ``reserve`` more.

    Whatever replaces ``keys`` by another tensor (``reorder_cache``, ``batch_repeat_interleave``, a batch
    selection) is noticed at the next ``update``, which then moves the cache into fresh buffers once."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = reserve
        self._key_buffer: torch.Tensor | None = None  # [B, H, capacity, D]
        self._value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self.get_seq_length()
        end = start + key_states.shape[-2]
        if not self._holds(end, key_states):
            self._move(start, end + self.reserve, key_states, value_states)
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, start:end] = key_states
        self._value_buffer[:, :, start:end] = value_states
        self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]
        return self.keys, self.values

    def _holds(self, end: int, key_states: torch.Tensor) -> bool:
        """Whether the buffers still back ``keys`` and have room up to ``end`` for rows like ``key_states``."""
        buffer = self._key_buffer
        return (
            buffer is not None
            and self.keys is not None
            and self.keys.numel() > 0
            and self.keys.data_ptr() == buffer.data_ptr()
            and end <= buffer.shape[2]
            and buffer.shape[0] == key_states.shape[0]
        )

    def _move(self, start: int, capacity: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """New buffers of ``capacity`` positions, holding the ``start`` cached ones."""
        buffers = []
        for cached, new in ((self.keys, key_states), (self.values, value_states)):
            batch, heads, _, dim = new.shape
            buffer = new.new_empty((batch, heads, capacity, dim))
            if start:
                assert cached is not None
                buffer[:, :, :start] = cached
            buffers.append(buffer)
        self._key_buffer, self._value_buffer = buffers

    def reset(self) -> None:
        super().reset()
        self._key_buffer = self._value_buffer = None


def reserved_cache(config: Any, reserve: int) -> DynamicCache:
    """A ``DynamicCache`` for a model of ``config`` whose full-attention layers keep room for ``reserve`` more
    tokens each time they grow (sliding-window and other layer kinds stay transformers' own)."""
    cache = DynamicCache(config=config)
    cache.layers = [ReservedLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
