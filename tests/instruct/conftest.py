"""Fixtures for the instruct tests: offline hub, one CPU thread, a tiny policy saved as a checkpoint
folder (a real tokenizer with a chat template). Jobs run through ``tests.helpers.run_job``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from app.training.core.default_models import load_smollm2_tokenizer

    return load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A tiny random Llama and the SmolLM2 tokenizer saved like a policy version's folder. Its embeddings
    are widened (std 0.3) so that its logits can move under LoRA, as a real policy's do."""
    from app.training.core.tiny import tiny_llama

    model = tiny_llama(smollm2_tokenizer, seed=0)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
    folder = tmp_path_factory.mktemp("tiny-policy")
    model.save_pretrained(str(folder))
    smollm2_tokenizer.save_pretrained(str(folder))
    return folder
