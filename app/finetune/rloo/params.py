"""Parameters of the ``rloo`` job, validated when the job is queued (API, dashboard form, CLI alike).

The job's own fields (name, versions, prompt sets) and the settings it shares with the ``ppo`` job are
:class:`~app.finetune.core.policy_params.PolicyParams`'; the rest, and those whose default or meaning
differs for RLOO, are taken here from :class:`~app.training.rloo.config.RLOOConfig`, defaults and help
text included, so the API schema, the launch form and the trainer describe a field in the same words.
The defaults are the config's own, provisional until the closed-loop rule suite has measured them.
Checks that involve two fields (num_minibatches vs batch_size × samples_per_prompt, …) are the config's
``validate``, run here too and reported at the field it names. Kept free of torch.
"""

from __future__ import annotations

from typing import ClassVar

from app.finetune.core.params import config_params
from app.finetune.core.policy_params import PolicyParams
from app.training.rloo.config import MIN_SAMPLES, RLOOConfig

_RLOOSettings = config_params(
    RLOOConfig,
    # PolicyParams' fields as RLOO defaults or describes them (RLOOConfig redeclares them)
    ("batch_size", "kl_coef", "updates", "ppo_epochs", "num_minibatches", "learning_rate", "checkpoint_every"),
    ("samples_per_prompt", "advantage", "kl_penalty", "kl_estimator"),  # RLOO's own
    base=PolicyParams,
    bounds={"samples_per_prompt": {"ge": MIN_SAMPLES, "le": 256}},
)


class RLOOParams(_RLOOSettings):
    """An ``rloo`` job: the policy, the reward it chases, the prompts, and RLOO's hyper-parameters."""

    CONFIG: ClassVar[type[RLOOConfig]] = RLOOConfig
