"""Fixtures for the ``ppo`` job tests: the reward tests' tiny Llama (SmolLM2 tokenizer) as the policy, a
tiny reward model and classifier trained on it once per run, and rows that point at them.

The reward model is trained on "polite answers beat rude ones"; what it learnt hardly matters here:
these tests check the job's wiring (snapshot, scorers, checkpoints, registration, promotion), while
``tests/training`` checks that PPO learns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.registry.models import ModelKind, ModelStatus, ModelVersion
from tests.pool.conftest import pool_settings, warm_socket  # noqa: F401 - fixtures of the promotion test
from tests.rewards.conftest import add_prompt, add_prompt_set, tiny_backbone  # noqa: F401 - tiny_backbone: a fixture

# A few seconds per job on one core: 4 prompts per update, 6 new tokens, one optimizer step per epoch.
TINY_PPO: dict[str, Any] = {
    "updates": 3,
    "batch_size": 4,
    "num_minibatches": 1,
    "ppo_epochs": 1,
    "response_length": 6,
    "learning_rate": 1e-3,
    "use_cpu": True,
    "num_threads": 1,
    "checkpoint_every": 0,
}
QUESTIONS = [
    "How do I fix a bike?",
    "How do I clean the kitchen?",
    "How do I paint a shelf?",
    "How do I store my shoes?",
    "How do I wash a window?",
    "How do I sort the garage?",
]


@pytest.fixture(scope="session")
def scorer_folders(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:  # noqa: F811
    """A tiny reward model and classifier on the tiny Llama, one epoch each (only their wiring matters)."""
    from app.training.classifier.config import ClassifierConfig
    from app.training.classifier.trainer import train_classifier
    from app.training.core.data import LabelledResponse, PreferenceExample
    from app.training.reward.config import RewardConfig
    from app.training.reward.trainer import train_reward_model

    root = tmp_path_factory.mktemp("ppo-scorers")
    common = {
        "backbone": str(tiny_backbone),
        "epochs": 1,
        "batch_size": 4,
        "num_threads": 1,
        "use_cpu": True,
        "validation_fraction": 0.0,
        "checkpoint_every": 0,
    }
    prefs = [PreferenceExample(f"q{i}", "Sure, happy to help!", "Ugh, do it yourself.", id=i) for i in range(8)]
    labelled = [
        LabelledResponse(f"q{i}", "answer", {"quality": float(i % 2), "safety": float(i % 3 > 0)}, id=i)
        for i in range(8)
    ]
    train_reward_model(prefs, RewardConfig(**common), root / "rm")
    train_classifier(labelled, ClassifierConfig(**common), root / "cls")
    return {"reward": root / "rm", "classifier": root / "cls"}


def add_version(
    db: Session, kind: ModelKind, path: Path, *, name: str, status: ModelStatus = ModelStatus.ready
) -> ModelVersion:
    """A registered version whose folder is ``path``; a policy gets the in-process serving config."""
    config = (
        {"backend": "transformers", "path": str(path), "batch_size": 16, "device": "cpu"}
        if kind is ModelKind.policy
        else {}
    )
    version = ModelVersion(name=name, kind=kind, status=status, path=str(path), base_model="tiny-llama", config=config)
    db.add(version)
    db.flush()
    return version


def seed_loop(
    db: Session, policy_folder: Path, reward_folder: Path, *, policy_status: ModelStatus = ModelStatus.promoted
) -> tuple[ModelVersion, ModelVersion, int]:
    """A (promoted) policy, a ready reward version and an active prompt set: (policy, reward, set id)."""
    policy = add_version(db, ModelKind.policy, policy_folder, name="tiny-policy-v0", status=policy_status)
    reward = add_version(db, ModelKind.reward, reward_folder, name="tiny-rm")
    prompt_set = add_prompt_set(db)
    for question in QUESTIONS:
        add_prompt(db, prompt_set, question)
    return policy, reward, prompt_set.id
