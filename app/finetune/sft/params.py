"""Parameters of the ``sft`` job, validated when the job is queued (API, dashboard form, CLI alike).

The training fields are :class:`~app.training.sft.config.SFTConfig`'s, defaults and help text taken
from it and bounds from ``SETTING_BOUNDS`` (:func:`~app.finetune.core.params.config_params`), so the API
schema, the launch form and the trainer default and describe a field alike; the rest (:class:`SFTJob`) say
what to train on and how refusals are measured. Kept free of torch: the web app imports it to validate a
job before queueing it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from app.bounds import Bool, Float, Id, Int
from app.finetune.core.params import ProcessesParams, config_params, config_values
from app.training.sft.config import SFTConfig

NAME_PATTERN = r"^(?:|[A-Za-z0-9][A-Za-z0-9._-]{0,99})$"  # empty: the default name
# A file in <data_dir>/sft/, by name: checked when the job is queued, so no other path can be named.
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.jsonl$"


class SFTJob(ProcessesParams):
    """What is fine-tuned, on what, and how refusals are measured: the job's own fields."""

    base_version_id: Id | None = Field(None, description="Policy version to fine-tune; default: the promoted one.")
    name: str = Field(
        "",
        max_length=100,
        pattern=NAME_PATTERN,
        description="Name of the new version (letters, digits, . _ -); default: 'sft-<job id>'.",
    )
    use_demonstrations: Bool = Field(
        True, description="Train on the annotators' demonstrations (ideal and safe answers)."
    )
    jsonl_files: list[Annotated[str, Field(pattern=FILE_NAME)]] = Field(
        default_factory=list,
        max_length=20,
        description='SFT JSONL files ({"messages": [...]} per line) in <data_dir>/sft/, by name.',
    )
    safety_share: Float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of safety demonstrations (safe answers) "
        "in the mix; empty: use the data as it is. Too much teaches the model to "
        "refuse harmless requests.",
    )
    refusal_prompts: Int = Field(
        40, ge=0, le=1000, description="Held-out harmless prompts the refusal rate is measured on; 0 skips it."
    )
    refusal_prompt_set_id: Id | None = Field(
        None, description="Take them from this set (non-red-team prompts); default: the shipped starter prompts."
    )
    refusal_max_new_tokens: Int = Field(
        32, ge=4, le=512, description="Answer length when measuring refusals (only the first sentence is judged)."
    )


# The trainer's settings the job takes, in the form's order; the rest stay at SFTConfig's defaults.
_SFTSettings = config_params(
    SFTConfig,
    ("epochs", "learning_rate", "batch_size", "max_length"),
    ("lora", "lora_r", "lora_alpha"),
    ("validation_fraction", "seed", "checkpoint_every", "log_every"),
    base=SFTJob,
    bounds={"batch_size": {"ge": 1, "le": 1024}, "max_length": {"ge": 16, "le": 131_072}},
)


class SFTParams(_SFTSettings):
    """Parameters of an ``sft`` job; the training fields are those of :class:`SFTConfig`."""

    def sft_config(self, base_model: str) -> SFTConfig:
        """The trainer's config: the training fields above, the rest at the config's defaults."""
        return SFTConfig(base_model=base_model, **config_values(self, SFTConfig))
