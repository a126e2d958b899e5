"""min_steps: a training split too small for that many optimizer steps in ``epochs`` passes gets more
passes, whole ones, and a large split is left at ``epochs``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.training.core.loop import planned_epochs
from app.training.core.tiny import tiny_llama
from app.training.reward.config import RewardConfig
from app.training.reward.trainer import train_reward_model


@pytest.mark.parametrize(
    ("epochs", "min_steps", "steps_per_epoch", "expected"),
    [
        (1, 50, 8, 7),  # 7 whole passes are the fewest that reach 50 steps (56)
        (1, 50, 50, 1),
        (1, 50, 51, 1),
        (2, 50, 100, 2),  # a large split keeps its epochs
        (10, 50, 8, 10),  # more epochs than the floor needs stay
        (3, 0, 8, 3),  # no floor
        (2, 50, 0, 2),  # nothing to step over
    ],
)
def test_planned_epochs(epochs: int, min_steps: int, steps_per_epoch: int, expected: int) -> None:
    assert planned_epochs(SimpleNamespace(epochs=epochs, min_steps=min_steps), steps_per_epoch) == expected


def test_a_config_without_the_floor_keeps_its_epochs() -> None:
    assert planned_epochs(SimpleNamespace(epochs=2), 3) == 2  # the DPO and SFT configs have none


def _config(**overrides: object) -> RewardConfig:
    values = {
        "learning_rate": 1e-3,
        "epochs": 1,
        "batch_size": 8,
        "group_by_length": False,
        "validation_fraction": 0.0,
        "checkpoint_every": 0,
        "num_threads": 1,
    }
    return RewardConfig(**{**values, **overrides})


@pytest.mark.parametrize(("min_steps", "steps"), [(10, 12), (0, 3), (2, 3)])
def test_a_small_split_trains_at_least_min_steps(tmp_path, preferences, smollm2_tokenizer, min_steps, steps) -> None:
    result = train_reward_model(
        preferences(24),  # 3 steps of 8 pairs a pass
        _config(min_steps=min_steps),
        tmp_path / "rm",
        backbone=tiny_llama(smollm2_tokenizer),
        tokenizer=smollm2_tokenizer,
    )
    assert result.steps == steps
    assert result.card["steps"] == steps


def test_negative_min_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="min_steps"):
        _config(min_steps=-1).validate()
