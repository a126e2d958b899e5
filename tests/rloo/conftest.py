"""Fixtures for the RLOO tests: the training tests' offline hub, one CPU thread and recording reporter, and
the ``ppo`` job tests' tiny policy, reward model, classifier and seeded rows, which the ``rloo`` job reads
the same way."""

from __future__ import annotations

from typing import Any

from tests.ppo.conftest import scorer_folders  # noqa: F401 - a fixture
from tests.rewards.conftest import scratch_sessions, tiny_backbone  # noqa: F401 - fixtures
from tests.training.conftest import reporter_cls  # noqa: F401 - a fixture

# A few seconds per job on one core: 2 prompts × 4 samples per update, 6 new tokens, one optimizer step.
TINY_RLOO: dict[str, Any] = {
    "updates": 3,
    "batch_size": 2,
    "samples_per_prompt": 4,
    "num_minibatches": 1,
    "ppo_epochs": 1,
    "response_length": 6,
    "use_cpu": True,
    "num_threads": 1,
    "checkpoint_every": 0,
}
