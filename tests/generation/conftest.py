"""Fixtures for the generation tests: offline hub, one CPU thread (the machine is shared), the
SmolLM2 tokenizer cached on disk, tiny random Llamas and, for ``real_models`` tests, the real
SmolLM2 converted once into a cache folder that later runs (and the bench) reuse."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)

CACHE = Path(tempfile.gettempdir())


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from app.training.core.default_models import load_smollm2_tokenizer

    return load_smollm2_tokenizer(CACHE / "rlhf-smollm2-tokenizer")


@pytest.fixture(scope="session")
def tiny_model(smollm2_tokenizer):
    """``tiny_llama`` as it comes: near-uniform logits, so sampling gives varied texts."""
    from app.training.core.tiny import tiny_llama

    return tiny_llama(smollm2_tokenizer, hidden_size=64, num_layers=2, seed=0).eval()


@pytest.fixture(scope="session")
def decisive_tiny_llama(smollm2_tokenizer):
    """A tiny random Llama whose greedy choices are clear and depend on the prompt. As built,
    its tied head mostly echoes the last input token ("\n" forever) with near-equal logits, so
    greedy decoding would hinge on float noise (padding may legitimately change the last bits).
    An untied head with unit-variance weights spreads the logits (top-2 gaps ~1, noise ~1e-6)
    and stronger layers let the context, not just the last token, decide."""
    from app.training.core.tiny import tiny_llama

    model = tiny_llama(smollm2_tokenizer, hidden_size=64, num_layers=2, seed=0)
    head = torch.nn.Linear(64, len(smollm2_tokenizer), bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)))
        for weight in model.model.layers.parameters():
            if weight.dim() == 2:
                weight.mul_(10.0)
    model.lm_head = head
    return model.eval()


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """The real SmolLM2, converted on first use (about a minute) and reused afterwards."""
    from app.training.core.convert import convert_default_policy

    return convert_default_policy(CACHE / "rlhf-smollm2-policy")
