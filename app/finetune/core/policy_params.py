"""What the parameters of the ``ppo`` and ``rloo`` jobs share, validated when a job is queued.

Both train a policy version against a reward version on a snapshot of prompts (:class:`PolicyJob`, the
job's own fields), through the shared policy-gradient settings of
:class:`~app.training.ppo.config.PolicyGradientConfig`; their types, defaults and help come from there and
their bounds from :data:`~app.finetune.core.params.SETTING_BOUNDS` (:func:`~app.finetune.core.params.config_params`).
A job whose trainer defaults or describes a field differently takes it again from its own config, as
``head_params`` does for the reward and classifier jobs. Kept free of torch: the web app imports it to
validate a job before queueing it.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Self

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.bounds import Id, IdList
from app.finetune.core.params import ProcessesParams, config_params, version_name_field
from app.training.core.config import LoRASettings
from app.training.ppo.config import PolicyGradientConfig

# The adapter settings every job that trains a policy version takes: use_lora, then LoRASettings' fields.
ADAPTER_SETTINGS = ("use_lora", *(spec.name for spec in fields(LoRASettings)))


class NewPolicyVersionJob(ProcessesParams):
    """A job that trains a policy version into a new one (PPO, RLOO, DPO): the new version's name; a
    field the job does not know is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = version_name_field("new policy version")


class PolicyJob(NewPolicyVersionJob):
    """What is trained, against what, on what: the job's own fields, resolved before the trainer runs."""

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


# The trainer's settings a policy-gradient job takes, in the form's order (policy and pad_token are the job's
# to resolve; kl_estimator is typed differently by each kind).
_PolicySettings = config_params(
    PolicyGradientConfig,
    ADAPTER_SETTINGS,
    ("batch_size", "max_prompt_length", "response_length", "temperature", "missing_eos_penalty"),
    ("safety_weight", "safety_head", "kl_coef", "target_kl", "kl_horizon"),
    ("updates", "ppo_epochs", "num_minibatches", "micro_batch_size"),
    ("learning_rate", "weight_decay", "max_grad_norm", "clip_range"),
    ("seed", "log_every", "checkpoint_every", "num_threads", "use_cpu", "mixed_precision"),
    base=PolicyJob,
)


class PolicyParams(_PolicySettings):
    """A policy-training job: the policy, the reward it chases, the prompts, and the shared settings.

    A subclass names its trainer's config (``CONFIG``) and the fields that are the job's own rather than
    the config's (``JOB_OWN``)."""

    CONFIG: ClassVar[type[PolicyGradientConfig]] = PolicyGradientConfig
    JOB_OWN: ClassVar[tuple[str, ...]] = tuple(PolicyJob.model_fields)

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
