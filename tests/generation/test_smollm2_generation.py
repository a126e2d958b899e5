"""The real default policy, converted from its GGUF, served by the batched backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.generation import SamplingParams, backend_from_config

pytestmark = pytest.mark.real_models


def test_smollm2_writes_clean_answers(smollm2_checkpoint: Path) -> None:
    backend = backend_from_config({"backend": "transformers", "path": str(smollm2_checkpoint), "batch_size": 8})
    prompts = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "Give me one tip for sleeping better."}],
    ]

    out = backend.generate(prompts, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=24, seed=0, n=2))

    assert len(out) == 4
    for generation in out:
        assert generation.text.strip()
        assert "<|im_" not in generation.text and "\ufffd" not in generation.text
        assert 1 <= generation.token_count <= 24
    greedy = backend.generate(prompts[:1], SamplingParams(temperature=0, max_new_tokens=24))
    assert "Paris" in greedy[0].text
