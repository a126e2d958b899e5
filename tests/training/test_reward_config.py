"""The job configs: every field documented, stored parameters validated."""

from __future__ import annotations

import json

import pytest

from app.training.classifier.config import ClassifierConfig
from app.training.core.config import config_help
from app.training.reward.config import RewardConfig


@pytest.mark.parametrize("config_cls", [RewardConfig, ClassifierConfig])
def test_every_field_has_a_help_string(config_cls) -> None:
    helps = config_help(config_cls)
    assert helps and all(len(text) > 10 for text in helps.values()), helps


def test_stored_parameters_round_trip_and_typos_are_refused() -> None:
    stored = json.loads(json.dumps(ClassifierConfig(heads=("safety",), epochs=2).to_dict()))
    assert ClassifierConfig.from_dict(stored) == ClassifierConfig(heads=("safety",), epochs=2)
    with pytest.raises(ValueError, match="unknown RewardConfig fields"):
        RewardConfig.from_dict({"learnig_rate": 1e-4})


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"validation_fraction": 1.0}, {"learning_rate": 0.0}, {"margin": -1.0}, {"pooling": "max"}]
)
def test_out_of_range_values_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        RewardConfig(**bad)
