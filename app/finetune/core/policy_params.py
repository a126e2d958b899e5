"""What the parameters of the ``ppo`` and ``rloo`` jobs share, validated when a job is queued.

Both train a policy version against a reward version on a snapshot of prompts, through the shared
policy-gradient settings of :class:`~app.training.ppo.config.PolicyGradientConfig`; their defaults and
help come from there (:func:`~app.finetune.core.params.config_field`). A job whose trainer defaults or
describes a field differently redeclares it from its own config, as ``head_params`` does for the reward
and classifier jobs. Kept free of torch: the web app imports it to validate a job before queueing it.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.bounds import Bool, Float, Id, IdList, Int, Seed
from app.finetune.core.params import config_field, version_name_field
from app.training.ppo.config import MixedPrecision, PolicyGradientConfig

_cfg = partial(config_field, PolicyGradientConfig)  # short, so each field below stays one readable line


class PolicyParams(BaseModel):
    """A policy-training job: the policy, the reward it chases, the prompts, and the shared settings.

    A subclass names its trainer's config (``CONFIG``) and the fields that are the job's own rather than
    the config's (``JOB_OWN``)."""

    CONFIG: ClassVar[type[PolicyGradientConfig]] = PolicyGradientConfig
    JOB_OWN: ClassVar[tuple[str, ...]] = (
        "name",
        "policy_version_id",
        "reward_version_id",
        "classifier_version_id",
        "prompt_set_ids",
    )

    model_config = ConfigDict(extra="forbid")
    # --- what is trained, against what, on what
    name: str | None = version_name_field("new policy version")
    policy_version_id: Id | None = Field(
        None, description="Policy version to train; default: the promoted one. The new version's parent."
    )
    reward_version_id: Id | None = Field(
        None, description="Reward version whose score is the reward; default: the latest ready one."
    )
    classifier_version_id: Id | None = Field(
        None,
        description="Classifier version for the safety penalty "
        "(reward − safety_weight × P(unsafe)); empty: no penalty.",
    )
    prompt_set_ids: IdList | None = Field(
        None,
        description="Train on the prompts of these sets; default: every active set. Retired prompts are left out.",
    )
    # --- the trainer's settings
    use_lora: Bool = _cfg("use_lora")
    lora_r: Int = _cfg("lora_r", ge=1, le=1024)
    lora_alpha: Int = _cfg("lora_alpha", ge=1, le=4096)
    lora_dropout: Float = _cfg("lora_dropout", ge=0, lt=1)
    lora_target_modules: str = _cfg("lora_target_modules", max_length=500)
    batch_size: Int = _cfg("batch_size", ge=1, le=4096)
    max_prompt_length: Int = _cfg("max_prompt_length", ge=1, le=32768)
    response_length: Int = _cfg("response_length", ge=1, le=8192)
    temperature: Float = _cfg("temperature", gt=0, le=10)
    missing_eos_penalty: Float = _cfg("missing_eos_penalty", ge=0, le=100)
    safety_weight: Float = _cfg("safety_weight", ge=0, le=100)
    safety_head: str = _cfg("safety_head", min_length=1, max_length=100)
    kl_coef: Float = _cfg("kl_coef", ge=0, le=100)
    target_kl: Float = _cfg("target_kl", ge=0, le=1000)
    kl_horizon: Int = _cfg("kl_horizon", ge=1, le=10_000_000)
    updates: Int = _cfg("updates", ge=1, le=1_000_000)
    ppo_epochs: Int = _cfg("ppo_epochs", ge=1, le=100)
    num_minibatches: Int = _cfg("num_minibatches", ge=1, le=4096)
    micro_batch_size: Int = _cfg("micro_batch_size", ge=0, le=4096)
    learning_rate: Float = _cfg("learning_rate", gt=0, le=1)
    weight_decay: Float = _cfg("weight_decay", ge=0, le=1)
    max_grad_norm: Float = _cfg("max_grad_norm", ge=0, le=1000)
    clip_range: Float = _cfg("clip_range", gt=0, le=10)
    seed: Seed = _cfg("seed")
    log_every: Int = _cfg("log_every", ge=1, le=1_000_000)
    checkpoint_every: Int = _cfg("checkpoint_every", ge=0, le=1_000_000)
    num_threads: Int = _cfg("num_threads", ge=0, le=256)
    use_cpu: Bool = _cfg("use_cpu")
    mixed_precision: MixedPrecision = _cfg("mixed_precision")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """The trainer's own cross-field checks, reported at the field they name."""
        try:
            self.trainer_config(policy="")
        except ValueError as exc:
            field, _, why = str(exc).partition(": ")
            loc = field if field in type(self).model_fields else "__root__"
            detail = InitErrorDetails(
                type=PydanticCustomError("value_error", why or str(exc)), loc=(loc,), input=getattr(self, loc, None)
            )
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from None
        return self

    def trainer_config(self, *, policy: str, **resolved: Any) -> PolicyGradientConfig:
        """The trainer's config: the training fields, the resolved policy folder and anything else resolved."""
        values = {key: value for key, value in self.model_dump().items() if key not in self.JOB_OWN}
        return self.CONFIG.from_dict({**values, "policy": policy, **resolved})
