"""The jobs' parameters: validated when queued (the error names the field), defaults filled in, and
mapped onto the trainers' configs field for field."""

from __future__ import annotations

import pytest

from app.errors import Invalid
from app.jobs import registry
from app.finetune.classifier.params import ClassifierParams
from app.finetune.reward.params import RewardParams
from app.training.classifier.config import ClassifierConfig
from app.training.core.config import DEFAULT_BACKBONE
from app.training.reward.config import RewardConfig


def test_defaults_are_stored_and_become_a_reward_config() -> None:
    stored = registry.validate_params("reward", {})
    assert stored["backbone"] == DEFAULT_BACKBONE and stored["aggregate"] == "each" and stored["log_every"] == 1
    config = RewardConfig.from_dict(RewardParams.model_validate(stored).trainer_values(RewardConfig))
    assert (config.margin, config.learning_rate, config.epochs) == (0.0, 5e-5, 1)


def test_classifier_params_become_a_classifier_config() -> None:
    params = ClassifierParams.model_validate({"heads": ["safety"], "threshold": 0.7, "epochs": 3})
    config = ClassifierConfig.from_dict(params.trainer_values(ClassifierConfig))
    assert (config.heads, config.threshold, config.epochs) == (("safety",), 0.7, 3)


@pytest.mark.parametrize(("kind", "params", "field"), [
    ("reward", {"learning_rate": 0}, "params.learning_rate"),
    ("reward", {"epochs": 0}, "params.epochs"),
    ("reward", {"margin": -1}, "params.margin"),
    ("reward", {"aggregate": "mean"}, "params.aggregate"),
    ("reward", {"filters": {"since": "2026-01-01T00:00:00"}}, "params.filters.since"),
    ("reward", {"filters": {"prompt_set_ids": ["x"]}}, "params.filters.prompt_set_ids.0"),
    ("reward", {"name": "../escape"}, "params.name"),
    ("reward", {"lr": 0.1}, "params.lr"),
    ("classifier", {"heads": ["toxicity"]}, "params.heads.0"),
    ("classifier", {"threshold": 1.0}, "params.threshold"),
])
def test_bad_parameters_name_the_field(kind: str, params: dict, field: str) -> None:
    with pytest.raises(Invalid) as raised:
        registry.validate_params(kind, params)
    assert raised.value.field == field


def test_filter_dates_must_be_ordered() -> None:
    with pytest.raises(Invalid, match="since must be before until"):
        registry.validate_params("reward", {"filters": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}})
