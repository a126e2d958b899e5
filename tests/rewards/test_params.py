"""The jobs' parameters: validated when queued (the error names the field), defaults filled in, and
mapped onto the trainers' configs field for field."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pytest
from pydantic import BaseModel

from app.errors import Invalid
from app.finetune.classifier.params import ClassifierParams
from app.finetune.core.params import config_field, config_values
from app.finetune.ppo.params import PPOParams
from app.finetune.reward.params import RewardParams
from app.finetune.sft.params import SFTParams
from app.jobs import registry
from app.training.classifier.config import ClassifierConfig
from app.training.core.config import DEFAULT_BACKBONE, config_help, help_field
from app.training.ppo.config import PPOConfig
from app.training.reward.config import RewardConfig
from app.training.sft.config import SFTConfig


def test_defaults_are_stored_and_become_a_reward_config() -> None:
    stored = registry.validate_params("reward", {})
    assert stored["backbone"] == DEFAULT_BACKBONE and stored["aggregate"] == "each"
    assert stored["log_every"] == RewardConfig().log_every == 10  # the config's, no longer a hand-copied 1
    config = RewardConfig.from_dict(RewardParams.model_validate(stored).trainer_values(RewardConfig))
    assert (config.margin, config.learning_rate, config.epochs) == (0.0, 5e-5, 1)


def test_trainable_layers_reaches_the_reward_and_classifier_trainers() -> None:
    stored = registry.validate_params("reward", {"trainable_layers": 3})
    config = RewardConfig.from_dict(RewardParams.model_validate(stored).trainer_values(RewardConfig))
    assert config.trainable_layers == 3
    assert registry.validate_params("reward", {})["trainable_layers"] == 0  # every layer, unless asked
    params = ClassifierParams.model_validate({"heads": ["safety"], "trainable_layers": 2})
    assert ClassifierConfig.from_dict(params.trainer_values(ClassifierConfig)).trainable_layers == 2


def test_min_steps_reaches_the_reward_and_classifier_trainers() -> None:
    stored = registry.validate_params("reward", {})
    assert stored["min_steps"] == 50  # a first few hundred judgements get enough steps, unless asked otherwise
    params = RewardParams.model_validate({**stored, "min_steps": 0})
    config = RewardConfig.from_dict(params.trainer_values(RewardConfig))
    assert config.min_steps == 0
    labels = ClassifierParams.model_validate({"heads": ["safety"], "min_steps": 7})
    assert ClassifierConfig.from_dict(labels.trainer_values(ClassifierConfig)).min_steps == 7


def test_classifier_params_become_a_classifier_config() -> None:
    params = ClassifierParams.model_validate({"heads": ["safety"], "threshold": 0.7, "epochs": 3})
    config = ClassifierConfig.from_dict(params.trainer_values(ClassifierConfig))
    assert (config.heads, config.threshold, config.epochs) == (("safety",), 0.7, 3)


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("reward", {"learning_rate": 0}, "params.learning_rate"),
        ("reward", {"epochs": 0}, "params.epochs"),
        ("reward", {"margin": -1}, "params.margin"),
        ("reward", {"aggregate": "mean"}, "params.aggregate"),
        ("reward", {"filters": {"since": "2026-01-01T00:00:00"}}, "params.filters.since"),
        ("reward", {"filters": {"prompt_set_ids": ["x"]}}, "params.filters.prompt_set_ids.0"),
        ("reward", {"name": "../escape"}, "params.name"),
        ("reward", {"lr": 0.1}, "params.lr"),
        ("reward", {"trainable_layers": -1}, "params.trainable_layers"),
        ("reward", {"min_steps": -1}, "params.min_steps"),
        ("classifier", {"heads": ["toxicity"]}, "params.heads.0"),
        ("classifier", {"threshold": 1.0}, "params.threshold"),
    ],
)
def test_bad_parameters_name_the_field(kind: str, params: dict, field: str) -> None:
    with pytest.raises(Invalid) as raised:
        registry.validate_params(kind, params)
    assert raised.value.field == field


def test_filter_dates_must_be_ordered() -> None:
    with pytest.raises(Invalid, match="since must be before until"):
        registry.validate_params(
            "reward", {"filters": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}}
        )


# The job defaults that differ from the trainer's on purpose, each documented where it is declared.
JOB_DEFAULTS = {
    PPOParams: {"kl_coef": 0.07, "updates": 20, "learning_rate": 1e-3, "checkpoint_every": 5},
    ClassifierParams: {"heads": ["quality", "safety"]},  # the config's tuple, as the JSON list a job stores
}


@pytest.mark.parametrize(
    ("params_cls", "config_cls"),
    [
        (RewardParams, RewardConfig),
        (ClassifierParams, ClassifierConfig),
        (PPOParams, PPOConfig),
        (SFTParams, SFTConfig),
    ],
)
def test_job_fields_default_and_describe_like_the_trainers_config(
    params_cls: type[BaseModel], config_cls: type
) -> None:
    helps = config_help(config_cls)
    shared = [spec for spec in fields(config_cls) if spec.name in params_cls.model_fields]
    assert len(shared) >= 3
    for spec in shared:
        if params_cls is PPOParams and spec.name == "value_model":
            continue  # the job's own choice ("head"/"reward"), which ppo_config turns into the config's folder
        job_field = params_cls.model_fields[spec.name]
        assert job_field.description == helps[spec.name], spec.name
        expected = JOB_DEFAULTS.get(params_cls, {}).get(spec.name, spec.default)
        assert job_field.default == expected, spec.name


@dataclass
class _Config:
    steps: int = help_field(10, "Optimizer steps.")
    tags: list[str] = field(default_factory=list, metadata={"help": "Labels."})
    bare: int = 0


def test_config_field_takes_the_default_and_help_and_keeps_the_bounds() -> None:
    class Params(BaseModel):
        steps: int = config_field(_Config, "steps", ge=1)
        more: int = config_field(_Config, "steps", 20, ge=1)
        tags: list[str] = config_field(_Config, "tags")

    assert (Params().steps, Params().more, Params().tags) == (10, 20, [])
    schema = Params.model_json_schema()["properties"]
    assert schema["steps"]["description"] == "Optimizer steps." and schema["steps"]["minimum"] == 1
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Params(steps=0)
    assert config_values(Params(steps=3), _Config) == {"steps": 3, "tags": []}  # "more" is not the config's


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nope",), "has no field 'nope'"),
        (("bare",), "has no help text"),
        (("steps", 10), "is the config's own default; leave it out"),  # an override that no longer differs
    ],
)
def test_config_field_refuses_what_would_let_the_two_drift(args: tuple, says: str) -> None:
    with pytest.raises((KeyError, ValueError), match=says):
        config_field(_Config, *args)
