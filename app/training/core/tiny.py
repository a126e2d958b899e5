"""Tiny random models built from a config, for tests and benchmarks: real architectures and a
real tokenizer, small enough that a test trains them in seconds on two CPU cores."""

from __future__ import annotations

import torch


def tiny_llama(tokenizer, *, hidden_size: int = 64, num_layers: int = 2, seed: int = 0):  # noqa: ANN001, ANN201
    """A randomly initialised Llama causal LM sized for ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
