"""Parameters of the ``reward`` and ``classifier`` jobs, validated when a job is queued.

The training fields' defaults and help come from the trainers' config dataclasses
(:func:`~app.finetune.core.params.config_field`), so the API schema, the dashboard form and the
trainer default and describe a field alike. Kept free of torch: the web app imports it to validate a
job before queueing it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.bounds import Bool, Float, Id, IdList, Int, Seed
from app.finetune.core.params import config_field, config_values, version_name_field
from app.registry.locations import ModelLocation
from app.training.core.config import MixedPrecision, Pooling, TrainConfig

_cfg = partial(config_field, TrainConfig)  # what the reward and classifier configs share; one line a field


class FiltersIn(BaseModel):
    """Which annotations the run trains on; an empty filter means all."""

    model_config = ConfigDict(extra="forbid")
    prompt_set_ids: IdList | None = Field(None, description="Only prompts of these sets.")
    annotator_ids: IdList | None = Field(None, description="Only these annotators' work.")
    since: AwareDatetime | None = Field(None, description="Only annotations made at or after this time (with zone).")
    until: AwareDatetime | None = Field(None, description="Only annotations made before this time (with zone).")

    @model_validator(mode="after")
    def _ordered(self) -> FiltersIn:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class TrainParams(BaseModel):
    """What the reward and classifier jobs share: the backbone, optimisation and data settings."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = version_name_field("registered version")
    backbone: ModelLocation = _cfg("backbone", min_length=1, max_length=500)
    backbone_version_id: Id | None = Field(
        None,
        description="Use a registered policy version's folder as "
        "the backbone (the policy's own architecture); overrides backbone.",
    )
    learning_rate: Float = _cfg("learning_rate", gt=0, le=1)
    epochs: Int = _cfg("epochs", ge=1, le=100)
    batch_size: Int = _cfg("batch_size", ge=1, le=4096)
    max_length: Int = _cfg("max_length", ge=8, le=32768)
    seed: Seed = _cfg("seed")
    validation_fraction: Float = _cfg("validation_fraction", ge=0, lt=1)
    pooling: Pooling = _cfg("pooling")
    weight_decay: Float = _cfg("weight_decay", ge=0, le=1)
    warmup_ratio: Float = _cfg("warmup_ratio", ge=0, lt=1)
    max_grad_norm: Float = _cfg("max_grad_norm", ge=0, le=1000)
    gradient_checkpointing: Bool = _cfg("gradient_checkpointing")
    group_by_length: Bool = _cfg("group_by_length")
    log_every: Int = _cfg("log_every", ge=1, le=10_000)
    checkpoint_every: Int = _cfg("checkpoint_every", ge=0, le=1_000_000)
    num_threads: Int = _cfg("num_threads", ge=0, le=256)
    use_cpu: Bool = _cfg("use_cpu")
    mixed_precision: MixedPrecision = _cfg("mixed_precision")
    filters: FiltersIn = Field(default_factory=FiltersIn, description="Which annotations to train on.")
    export_job_id: Id | None = Field(
        None,
        description="Train on exactly the rows of this finished export "
        "(its snapshot: judgements for a reward model, labels for a classifier) "
        "instead of filtering; the export's aggregation applies.",
    )

    @field_validator("export_job_id")
    @classmethod
    def _one_data_source(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("filters", FiltersIn()) != FiltersIn():
            raise ValueError("leave the filters empty when an export names the data: its snapshot fixes it")
        return value

    def trainer_values(self, config_cls: type[TrainConfig]) -> dict[str, Any]:
        """The fields the trainer's config takes (the rest — name, filters, … — are the job's own)."""
        return config_values(self, config_cls)


def filters_of(params: TrainParams) -> dict[str, Any]:
    """The filters as keyword arguments of ``dataset.DataFilters``."""
    f = params.filters
    return {"prompt_set_ids": f.prompt_set_ids, "annotator_ids": f.annotator_ids, "since": f.since, "until": f.until}
