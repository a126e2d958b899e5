"""Launch forms generated from a kind's parameter schema, and the form's values parsed back."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from app.dashboard import forms
from app.dashboard.forms import model_fields, parse_form, submitted_values
from app.errors import Invalid
from app.jobs import registry


class Optimiser(enum.StrEnum):
    adam = "adam"
    sgd = "sgd"


class Params(BaseModel):
    epochs: int = Field(3, ge=1, le=100, description="Passes over the data.")
    learning_rate: float = Field(5e-5, gt=0, le=1)
    optimiser: Optimiser = Optimiser.adam
    schedule: Literal["linear", "cosine"] = "linear"
    bf16: bool = False
    seed: int | None = None
    base_model: str = Field(..., min_length=1, description="Hugging Face id or local folder.")
    layers: list[int] = Field(default_factory=lambda: [1, 2])


def by_name() -> dict:
    return {f.name: f for f in model_fields(Params)}


def test_each_property_becomes_a_typed_input_with_its_default_and_bounds():
    fields = by_name()
    assert list(fields) == ["epochs", "learning_rate", "optimiser", "schedule", "bf16", "seed", "base_model", "layers"]
    epochs = fields["epochs"]
    assert (epochs.kind, epochs.value, epochs.minimum, epochs.maximum, epochs.step) == ("integer", "3", 1.0, 100.0, "1")
    assert epochs.description == "Passes over the data." and epochs.input_name == "param.epochs"
    assert (fields["learning_rate"].kind, fields["learning_rate"].minimum, fields["learning_rate"].step) == (
        "number",
        0.0,
        "any",
    )
    assert (fields["optimiser"].kind, fields["optimiser"].options, fields["optimiser"].value) == (
        "select",
        ["adam", "sgd"],
        "adam",
    )
    assert fields["schedule"].options == ["linear", "cosine"]
    assert (fields["bf16"].kind, fields["bf16"].value) == ("boolean", "false")
    assert (fields["seed"].kind, fields["seed"].nullable, fields["seed"].value) == ("integer", True, "")
    assert fields["base_model"].required and fields["base_model"].kind == "text"
    assert (fields["layers"].kind, fields["layers"].value) == ("json", "[1, 2]")


def test_parsed_values_validate_against_the_model():
    fields = list(by_name().values())
    form = {
        "param.epochs": "7",
        "param.learning_rate": "0.001",
        "param.optimiser": "sgd",
        "param.schedule": "cosine",
        "param.bf16": "true",
        "param.seed": "",
        "param.base_model": "tiny",
        "param.layers": "[4]",
        "csrf_token": "x",
    }
    params = parse_form(fields, form)
    assert Params.model_validate(params) == Params(
        epochs=7,
        learning_rate=0.001,
        optimiser=Optimiser.sgd,
        schedule="cosine",
        bf16=True,
        seed=None,
        base_model="tiny",
        layers=[4],
    )
    defaults = Params.model_validate(parse_form(fields, {"param.base_model": "m"}))
    assert (defaults.epochs, defaults.bf16, defaults.layers) == (3, False, [1, 2])


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [("epochs", "three", "whole number"), ("learning_rate", "fast", "number"), ("layers", "[1,", "JSON")],
)
def test_unparseable_text_names_the_field(name, text, message):
    with pytest.raises(Invalid) as caught:
        parse_form(list(by_name().values()), {f"param.{name}": text})
    assert caught.value.field == f"params.{name}" and message in caught.value.message


def test_what_was_typed_is_shown_again():
    fields = list(by_name().values())
    assert submitted_values(fields, {"param.epochs": "-1", "param.bf16": "true"})["epochs"] == "-1"
    assert submitted_values(fields, {})["bf16"] == "false"


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("kl_coef", "KL coefficient"),
        ("use_cpu", "Use the CPU"),
        ("prompt_set_ids", "Prompt sets"),
        ("policy_version_id", "Policy version"),
        ("lora_r", "LoRA rank"),
        ("max_new_tokens", "Maximum new tokens"),
        ("lam", "λ (GAE)"),
    ],
)
def test_labels_are_words_not_field_names(name, label):
    assert forms.label_for(name) == label


@pytest.mark.parametrize("kind", ["reward", "ppo", "online_dpo", "rloo", "dpo", "classifier"])
def test_a_trainer_form_puts_a_handful_up_front_and_the_rest_under_advanced(kind):
    """Issue 17: the reward form had 25 fields and PPO's about 40, all at once."""
    registry.load_job_modules()
    fields = forms.model_fields(registry.get_kind(kind).params_model)
    up_front = [f.name for f in fields if f.essential]
    assert 2 <= len(up_front) <= 10, up_front
    assert len(fields) - len(up_front) >= 10  # the tuning knobs wait under "Advanced"
    assert all(f.essential for f in fields if f.required)
