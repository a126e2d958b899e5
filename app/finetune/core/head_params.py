"""Parameters of the ``reward`` and ``classifier`` jobs, validated when a job is queued.

Field help comes from the trainers' config dataclasses (``config_help``), so the API schema, the
dashboard form and the trainer describe a field in the same words. Kept free of torch: the web app
imports it to validate a job before queueing it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from app.training.classifier.config import DEFAULT_HEADS, ClassifierConfig
from app.training.core.config import DEFAULT_BACKBONE, TrainConfig, config_help
from app.training.reward.config import RewardConfig

REWARD_HELP = config_help(RewardConfig)
CLASSIFIER_HELP = config_help(ClassifierConfig)
MAX_IDS = 1000  # ids per filter list


def _h(name: str, table: dict[str, str] = REWARD_HELP) -> str:
    return table[name]


class FiltersIn(BaseModel):
    """Which annotations the run trains on; an empty filter means all."""

    model_config = ConfigDict(extra="forbid")
    prompt_set_ids: list[int] | None = Field(None, max_length=MAX_IDS, description="Only prompts of these sets.")
    annotator_ids: list[int] | None = Field(None, max_length=MAX_IDS, description="Only these annotators' work.")
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
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                             description="Name of the registered version; default: <kind>-job<job id>.")
    backbone: str = Field(DEFAULT_BACKBONE, min_length=1, max_length=500, description=_h("backbone"))
    backbone_version_id: int | None = Field(None, ge=1, description="Use a registered policy version's folder as "
                                            "the backbone (the policy's own architecture); overrides backbone.")
    learning_rate: float = Field(5e-5, gt=0, le=1, description=_h("learning_rate"))
    epochs: int = Field(1, ge=1, le=100, description=_h("epochs"))
    batch_size: int = Field(16, ge=1, le=4096, description=_h("batch_size"))
    max_length: int = Field(512, ge=8, le=32768, description=_h("max_length"))
    seed: int = Field(0, ge=0, le=2**31 - 1, description=_h("seed"))
    validation_fraction: float = Field(0.1, ge=0, lt=1, description=_h("validation_fraction"))
    pooling: Literal["auto", "mean", "cls", "last"] = Field("auto", description=_h("pooling"))
    weight_decay: float = Field(0.0, ge=0, le=1, description=_h("weight_decay"))
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description=_h("warmup_ratio"))
    max_grad_norm: float = Field(1.0, ge=0, description=_h("max_grad_norm"))
    gradient_checkpointing: bool = Field(False, description=_h("gradient_checkpointing"))
    group_by_length: bool = Field(True, description=_h("group_by_length"))
    log_every: int = Field(1, ge=1, le=10_000, description=_h("log_every"))
    checkpoint_every: int = Field(100, ge=0, le=1_000_000, description=_h("checkpoint_every"))
    num_threads: int = Field(0, ge=0, le=256, description=_h("num_threads"))
    use_cpu: bool = Field(False, description=_h("use_cpu"))
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description=_h("mixed_precision"))
    filters: FiltersIn = Field(default_factory=FiltersIn, description="Which annotations to train on.")
    export_job_id: int | None = Field(None, ge=1, description="Train on exactly the rows of this finished export "
                                      "(its snapshot: judgements for a reward model, labels for a classifier) "
                                      "instead of filtering; the export's aggregation applies.")

    @field_validator("export_job_id")
    @classmethod
    def _one_data_source(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("filters", FiltersIn()) != FiltersIn():
            raise ValueError("leave the filters empty when an export names the data: its snapshot fixes it")
        return value

    def trainer_values(self, config_cls: type[TrainConfig]) -> dict[str, Any]:
        """The fields the trainer's config takes (the rest — name, filters, … — are the job's own)."""
        names = set(config_cls.__dataclass_fields__)
        return {key: value for key, value in self.model_dump().items() if key in names}


def filters_of(params: TrainParams) -> dict[str, Any]:
    """The filters as keyword arguments of ``dataset.DataFilters``."""
    f = params.filters
    return {"prompt_set_ids": f.prompt_set_ids, "annotator_ids": f.annotator_ids, "since": f.since, "until": f.until}
