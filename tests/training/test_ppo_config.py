"""PPOConfig: every field documented, defaults valid, bad values refused with the field's name."""

from __future__ import annotations

from dataclasses import fields

import pytest

from app.training.ppo.config import PPOConfig, config_help


def test_defaults_are_valid_and_every_field_has_help() -> None:
    config = PPOConfig()
    config.validate()
    help_texts = config_help(PPOConfig)
    assert set(help_texts) == {f.name for f in fields(PPOConfig)}
    assert all(len(text) > 10 for text in help_texts.values())
    assert config.use_lora and config.value_model == "" and config.pad_token  # LoRA + value head by default
    assert PPOConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lora_r", 0),
        ("batch_size", 0),
        ("response_length", 0),
        ("updates", 0),
        ("ppo_epochs", 0),
        ("num_minibatches", 0),
        ("temperature", 0.0),
        ("learning_rate", -1e-4),
        ("clip_range", 0.0),
        ("value_clip_range", 0.0),
        ("kl_coef", -0.1),
        ("target_kl", -1.0),
        ("missing_eos_penalty", -1.0),
        ("safety_weight", -0.5),
        ("gamma", 1.5),
        ("lam", -0.1),
        ("lora_dropout", 1.0),
        ("kl_estimator", "k9"),
        ("mixed_precision", "fp8"),
        ("checkpoint_every", -1),
        ("max_grad_norm", -1.0),
        ("vf_coef", -0.1),
        ("pad_token", ""),
        ("safety_head", ""),
        ("kl_horizon", 0),
        ("max_prompt_length", 0),
    ],
)
def test_an_invalid_value_is_refused_naming_its_field(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: "):
        PPOConfig(**{name: value})
    config = PPOConfig()
    setattr(config, name, value)  # changed after construction: validate() still catches it
    with pytest.raises(ValueError, match=rf"^{name}: "):
        config.validate()


def test_the_batch_must_split_into_minibatches_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="^batch_size: must be a multiple of num_minibatches"):
        PPOConfig(batch_size=6, num_minibatches=4)
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.from_dict({"learning_rat": 1e-4})
