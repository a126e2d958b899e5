"""Fixtures for the DPO tests: the PPO tests' tiny Llama policy (SmolLM2 tokenizer) and tiny reward model and
classifier, and job parameters small enough that a job runs in seconds on one core."""

from __future__ import annotations

from typing import Any

from tests.ppo.conftest import add_version, scorer_folders, seed_loop  # noqa: F401 - scorer_folders: a fixture
from tests.rewards.conftest import scratch_sessions, tiny_backbone  # noqa: F401 - fixtures

RUNTIME: dict[str, Any] = {"use_cpu": True, "num_threads": 1, "learning_rate": 1e-2}
# 6 judged pairs → 2 steps of 4 (and 2 held out) with answers cut at 24 tokens.
TINY_DPO: dict[str, Any] = {
    **RUNTIME,
    "batch_size": 4,
    "max_response_length": 24,
    "validation_fraction": 0.25,
    "checkpoint_every": 0,
}
# 2 rounds × 2 prompts × 4 samples of 6 tokens, one step of 2 pairs per round.
TINY_ONLINE: dict[str, Any] = {
    **RUNTIME,
    "rounds": 2,
    "prompts_per_round": 2,
    "samples_per_prompt": 4,
    "response_length": 6,
    "batch_size": 2,
    "min_confidence": 0.5,  # a random tiny reward's scores are not calibrated log-odds: keep every pair
}
