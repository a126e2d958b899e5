"""The reserved KV cache decodes exactly as transformers' DynamicCache does, without copying the cache each step."""

from __future__ import annotations

import torch
from transformers import DynamicCache, LlamaForCausalLM

from app.generation.kv_cache import ReservedLayer, reserved_cache
from tests.training.test_ppo_trainer import tiny_policy, wordlevel_tokenizer


def tiny_lm() -> LlamaForCausalLM:
    return tiny_policy(wordlevel_tokenizer()).eval()


def decode(lm: LlamaForCausalLM, cache, prompt: torch.Tensor, steps: int, *, repeat: int = 1) -> torch.Tensor:
    """Logits of a greedy decode [steps, B·repeat, V]: prefill, optionally repeat each row's cache, then steps."""
    logits = []
    with torch.no_grad():
        out = lm(input_ids=prompt, past_key_values=cache, use_cache=True)
        if repeat > 1:
            cache.batch_repeat_interleave(repeat)
            out.logits = out.logits.repeat_interleave(repeat, dim=0)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(steps):
            out = lm(input_ids=token, past_key_values=cache, use_cache=True)
            logits.append(out.logits[:, -1])
            token = out.logits[:, -1].argmax(-1, keepdim=True)
    return torch.stack(logits)


def test_decoding_reads_what_a_dynamic_cache_holds() -> None:
    lm, prompt = tiny_lm(), torch.randint(3, 30, (3, 7), generator=torch.Generator().manual_seed(1))
    expected = decode(lm, DynamicCache(config=lm.config), prompt, 12)
    torch.testing.assert_close(decode(lm, reserved_cache(lm.config, 4), prompt, 12), expected, atol=1e-5, rtol=1e-5)


def test_a_cache_repeated_per_row_keeps_decoding_right() -> None:
    """batch_repeat_interleave replaces the layer's tensors: the next update moves them into new room."""
    lm, prompt = tiny_lm(), torch.randint(3, 30, (2, 5), generator=torch.Generator().manual_seed(2))
    expected = decode(lm, DynamicCache(config=lm.config), prompt, 6, repeat=3)
    torch.testing.assert_close(
        decode(lm, reserved_cache(lm.config, 16), prompt, 6, repeat=3), expected, atol=1e-5, rtol=1e-5
    )


def test_decoding_writes_into_the_reserved_room_instead_of_copying() -> None:
    lm, prompt = tiny_lm(), torch.randint(3, 30, (2, 5), generator=torch.Generator().manual_seed(3))
    cache = reserved_cache(lm.config, 8)
    assert all(type(layer) is ReservedLayer for layer in cache.layers)
    with torch.no_grad():
        lm(input_ids=prompt, past_key_values=cache, use_cache=True)
        first = [layer.keys.data_ptr() for layer in cache.layers]
        for _ in range(8):  # exactly the reserve: no step needs new room
            lm(input_ids=prompt[:, :1], past_key_values=cache, use_cache=True)
    assert [layer.keys.data_ptr() for layer in cache.layers] == first
    assert cache.get_seq_length() == 5 + 8
    with torch.no_grad():  # one past the reserve: the layer moves to a bigger buffer and goes on
        lm(input_ids=prompt[:, :1], past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == 14 and cache.layers[0].keys.data_ptr() != first[0]
