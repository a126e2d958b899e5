"""Parameters of the ``dpo`` and ``online_dpo`` jobs, validated when a job is queued (API, form, CLI alike).

The training fields are the trainers' config fields (:mod:`app.training.dpo.config`), defaults and help
text taken from there and bounds from ``SETTING_BOUNDS`` (:func:`~app.finetune.core.params.config_params`),
so the API schema, the launch form and the trainer describe a field in the same words; the defaults are
the configs' own, provisional until the closed-loop rule suite has measured them. The rest, each kind's
``…Job`` class, say what is trained on: the judged pairs (``dpo``, with the reward and classifier jobs'
filters) or the prompts and the reward version that ranks the policy's own samples (``online_dpo``).
Kept free of torch: the web app imports it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from app.bounds import Id, IdList
from app.finetune.core.head_params import FiltersIn
from app.finetune.core.params import config_params, config_values
from app.finetune.core.policy_params import ADAPTER_SETTINGS, NewPolicyVersionJob
from app.training.dpo.config import DPOBaseConfig, DPOConfig, OnlineDPOConfig


class DPOJob(NewPolicyVersionJob):
    """The policy both kinds start from: the job's own fields (the new version's name is the base's)."""

    CONFIG: ClassVar[type[DPOBaseConfig]] = DPOBaseConfig  # each kind names its trainer's config

    policy_version_id: Id | None = Field(
        None,
        description="Policy version to train, also the reference; default: the promoted one. The new version's parent.",
    )


# The settings both kinds take, in the form's order (policy and pad_token are the job's to resolve).
_DPOSettings = config_params(
    DPOBaseConfig,
    ADAPTER_SETTINGS,
    ("loss_type", "beta", "max_prompt_length"),
    ("learning_rate", "epochs", "batch_size", "weight_decay", "warmup_ratio", "max_grad_norm", "group_by_length"),
    ("seed", "log_every", "num_threads", "use_cpu", "mixed_precision"),
    base=DPOJob,
)


class DPOTrainingParams(_DPOSettings):
    """What both kinds share: the policy they start from (and keep as the reference), the loss, the optimiser."""

    def trainer_config(self, *, policy: str) -> DPOBaseConfig:
        """The trainer's config: the training fields and the resolved policy folder."""
        return self.CONFIG(**{**config_values(self, self.CONFIG), "policy": policy})


class DPOPairsJob(DPOTrainingParams):
    """What a ``dpo`` job trains on: the judged pairs, filtered and aggregated like the reward job's."""

    CONFIG: ClassVar[type[DPOBaseConfig]] = DPOConfig

    aggregate: Literal["each", "majority"] = Field(
        "each",
        description="With several annotators on a pair: every A/B judgement is a training pair ('each'), "
        "or the pair counts once for the side that strictly outvotes every other verdict ('majority').",
    )
    filters: FiltersIn = Field(default_factory=FiltersIn, description="Which judgements to train on.")


_DPOPairsSettings = config_params(
    DPOConfig,
    ("strength_margin", "max_response_length", "validation_fraction", "eval_batch_size", "checkpoint_every"),
    base=DPOPairsJob,
)


class DPOParams(_DPOPairsSettings):
    """A ``dpo`` job: the policy learns from the judged pairs directly (ties and both-bad are not pairs)."""


class OnlineDPOJob(DPOTrainingParams):
    """What an ``online_dpo`` job samples on and ranks with: the job's own fields."""

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


_OnlineDPOSettings = config_params(
    OnlineDPOConfig,
    ("epochs",),  # online DPO's own default: passes over each round's pairs
    (
        "rounds",
        "prompts_per_round",
        "samples_per_prompt",
        "max_samples_per_prompt",
        "min_confidence",
        "response_length",
        "temperature",
    ),
    ("safety_weight", "safety_head", "max_kl_per_token"),
    base=OnlineDPOJob,
    bounds={
        "samples_per_prompt": {"ge": 4, "le": 64},
        "max_samples_per_prompt": {"ge": 0, "le": 64},
        "min_confidence": {"ge": 0.5, "lt": 1},
        "max_kl_per_token": {"ge": 0, "le": 100},
    },
)


class OnlineDPOParams(_OnlineDPOSettings):
    """An ``online_dpo`` job: rounds of the policy's own samples, ranked by a reward version, best vs worst."""
