"""Tiny random models built from a config, for tests and benchmarks: real architectures and a
real tokenizer, small enough that a test trains them in seconds on two CPU cores."""

from __future__ import annotations

import torch


def tiny_llama_config(  # noqa: ANN201 - a LlamaConfig
    tokenizer,  # noqa: ANN001
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    intermediate_size: int | None = None,
    num_key_value_heads: int = 2,
    **extra,  # noqa: ANN003 - any other LlamaConfig field (num_labels, tie_word_embeddings, ...)
):
    """A small Llama's config sized for ``tokenizer``'s vocabulary and special tokens: 4 heads, 512 positions,
    the intermediate size 2x the hidden one unless given (the peers' shared workloads use 4x and 4 KV heads)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def tiny_llama(tokenizer, *, hidden_size: int = 64, num_layers: int = 2, seed: int = 0):  # noqa: ANN001, ANN201
    """A randomly initialised Llama causal LM sized for ``tokenizer``'s vocabulary, embeddings tied."""
    from transformers import LlamaForCausalLM

    config = tiny_llama_config(tokenizer, hidden_size=hidden_size, num_layers=num_layers, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
