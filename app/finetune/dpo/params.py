"""Parameters of the ``dpo`` and ``online_dpo`` jobs, validated when a job is queued (API, form, CLI alike).

The training fields are the trainers' config fields (:mod:`app.training.dpo.config`), defaults and help
text taken from there (:func:`~app.finetune.core.params.config_field`), so the API schema, the launch form
and the trainer describe a field in the same words; the defaults are the configs' own, provisional until
the closed-loop rule suite has measured them. The rest say what is trained on: the judged pairs (``dpo``,
with the reward and classifier jobs' filters) or the prompts and the reward version that ranks the
policy's own samples (``online_dpo``). Kept free of torch: the web app imports it.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.bounds import Bool, Float, Id, IdList, Int, Seed
from app.finetune.core.head_params import FiltersIn
from app.finetune.core.params import config_field, config_values, version_name_field
from app.training.core.config import MixedPrecision
from app.training.dpo.config import DPOBaseConfig, DPOConfig, LossType, OnlineDPOConfig

_base = partial(config_field, DPOBaseConfig)  # short, so each field below stays one readable line
_dpo = partial(config_field, DPOConfig)
_online = partial(config_field, OnlineDPOConfig)


class DPOTrainingParams(BaseModel):
    """What both kinds share: the policy they start from (and keep as the reference), the loss, the optimiser."""

    CONFIG: ClassVar[type[DPOBaseConfig]] = DPOBaseConfig  # each kind names its trainer's config

    model_config = ConfigDict(extra="forbid")
    name: str | None = version_name_field("new policy version")
    policy_version_id: Id | None = Field(
        None,
        description="Policy version to train, also the reference; default: the promoted one. The new version's parent.",
    )
    use_lora: Bool = _base("use_lora")
    lora_r: Int = _base("lora_r", ge=1, le=1024)
    lora_alpha: Int = _base("lora_alpha", ge=1, le=4096)
    lora_dropout: Float = _base("lora_dropout", ge=0, lt=1)
    lora_target_modules: str = _base("lora_target_modules", max_length=500)
    loss_type: LossType = _base("loss_type")
    beta: Float = _base("beta", gt=0, le=100)
    max_prompt_length: Int = _base("max_prompt_length", ge=1, le=32768)
    learning_rate: Float = _base("learning_rate", gt=0, le=1)
    epochs: Int = _base("epochs", ge=1, le=100)
    batch_size: Int = _base("batch_size", ge=1, le=4096)
    weight_decay: Float = _base("weight_decay", ge=0, le=1)
    warmup_ratio: Float = _base("warmup_ratio", ge=0, lt=1)
    max_grad_norm: Float = _base("max_grad_norm", ge=0, le=1000)
    group_by_length: Bool = _base("group_by_length")
    seed: Seed = _base("seed")
    log_every: Int = _base("log_every", ge=1, le=1_000_000)
    num_threads: Int = _base("num_threads", ge=0, le=256)
    use_cpu: Bool = _base("use_cpu")
    mixed_precision: MixedPrecision = _base("mixed_precision")

    def trainer_config(self, *, policy: str) -> DPOBaseConfig:
        """The trainer's config: the training fields and the resolved policy folder."""
        return self.CONFIG(**{**config_values(self, self.CONFIG), "policy": policy})


class DPOParams(DPOTrainingParams):
    """A ``dpo`` job: the policy learns from the judged pairs directly (ties and both-bad are not pairs)."""

    CONFIG: ClassVar[type[DPOBaseConfig]] = DPOConfig

    aggregate: Literal["each", "majority"] = Field(
        "each",
        description="With several annotators on a pair: every A/B judgement is a training pair ('each'), "
        "or the pair counts once for the side that strictly outvotes every other verdict ('majority').",
    )
    filters: FiltersIn = Field(default_factory=FiltersIn, description="Which judgements to train on.")
    strength_margin: Float = _dpo("strength_margin", ge=0, le=20)
    max_response_length: Int = _dpo("max_response_length", ge=1, le=32768)
    validation_fraction: Float = _dpo("validation_fraction", ge=0, lt=1)
    eval_batch_size: Int = _dpo("eval_batch_size", ge=1, le=4096)
    checkpoint_every: Int = _dpo("checkpoint_every", ge=0, le=1_000_000)


class OnlineDPOParams(DPOTrainingParams):
    """An ``online_dpo`` job: rounds of the policy's own samples, ranked by a reward version, best vs worst."""

    CONFIG: ClassVar[type[DPOBaseConfig]] = OnlineDPOConfig

    reward_version_id: Id | None = Field(
        None, description="Reward version that ranks the samples; default: the latest ready one."
    )
    classifier_version_id: Id | None = Field(
        None,
        description="Classifier version for the safety penalty (score − safety_weight × P(unsafe)); empty: no penalty.",
    )
    prompt_set_ids: IdList | None = Field(
        None,
        description="Sample on the prompts of these sets; default: every active set. Retired prompts are left out.",
    )
    epochs: Int = _online("epochs", ge=1, le=100)  # online DPO's own default: passes over each round's pairs
    rounds: Int = _online("rounds", ge=1, le=10_000)
    prompts_per_round: Int = _online("prompts_per_round", ge=1, le=4096)
    samples_per_prompt: Int = _online("samples_per_prompt", ge=4, le=64)
    response_length: Int = _online("response_length", ge=1, le=8192)
    temperature: Float = _online("temperature", gt=0, le=10)
    safety_weight: Float = _online("safety_weight", ge=0, le=100)
    safety_head: str = _online("safety_head", min_length=1, max_length=100)
