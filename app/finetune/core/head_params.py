"""Parameters of the ``reward`` and ``classifier`` jobs, validated when a job is queued.

The training fields' types, defaults and help come from the trainers' config dataclasses and their
bounds from ``SETTING_BOUNDS`` (:func:`~app.finetune.core.params.config_params`), so the API schema, the
dashboard form and the trainer default and describe a field alike. Kept free of torch: the web app
imports it to validate a job before queueing it.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.bounds import Id, IdList
from app.finetune.core.params import ProcessesParams, config_field, config_params, config_values, version_name_field
from app.registry.locations import ModelLocation
from app.training.core.config import TrainConfig


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


class TrainJob(ProcessesParams):
    """The version's name and the backbone it is trained from: the job's choices before the settings."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = version_name_field("registered version")
    backbone: ModelLocation = config_field(TrainConfig, "backbone")
    backbone_version_id: Id | None = Field(
        None,
        description="Use a registered policy version's folder as "
        "the backbone (the policy's own architecture); overrides backbone.",
    )


# What the reward and classifier configs share, in the form's order (disable_dropout and eval_batch_size stay
# at the trainer's defaults). log_every has these jobs' own bound, narrower than the table's; max_length's
# differ from job to job, so the table has none.
_TrainSettings = config_params(
    TrainConfig,
    ("learning_rate", "epochs", "min_steps", "batch_size", "max_length", "seed", "validation_fraction", "pooling"),
    ("weight_decay", "warmup_ratio", "max_grad_norm", "trainable_layers", "gradient_checkpointing", "group_by_length"),
    ("log_every", "checkpoint_every", "num_threads", "use_cpu", "mixed_precision"),
    base=TrainJob,
    bounds={"log_every": {"ge": 1, "le": 10_000}, "max_length": {"ge": 8, "le": 32768}},
)


class TrainParams(_TrainSettings):
    """What the reward and classifier jobs share: the backbone, optimisation and data settings."""

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
