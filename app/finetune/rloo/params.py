"""Parameters of the ``rloo`` job, validated when the job is queued (API, dashboard form, CLI alike).

The job's own fields (name, versions, prompt sets) and the settings it shares with the ``ppo`` job are
:class:`~app.finetune.core.policy_params.PolicyParams`'; the rest, and those whose default or meaning
differs for RLOO, are declared here from :class:`~app.training.rloo.config.RLOOConfig`, defaults and help
text included, so the API schema, the launch form and the trainer describe a field in the same words.
The defaults are the config's own, provisional until the closed-loop rule suite has measured them.
Checks that involve two fields (num_minibatches vs batch_size × samples_per_prompt, …) are the config's
``validate``, run here too and reported at the field it names. Kept free of torch.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from app.bounds import Float, Int
from app.finetune.core.params import config_field
from app.finetune.core.policy_params import PolicyParams
from app.training.rloo.config import MIN_SAMPLES, AdvantageKind, KLChoice, KLPenalty, RLOOConfig

_cfg = partial(config_field, RLOOConfig)  # short, so each field below stays one readable line


class RLOOParams(PolicyParams):
    """An ``rloo`` job: the policy, the reward it chases, the prompts, and RLOO's hyper-parameters."""

    CONFIG: ClassVar[type[RLOOConfig]] = RLOOConfig

    # --- PolicyParams' fields as RLOO defaults or describes them
    batch_size: Int = _cfg("batch_size", ge=1, le=4096)
    kl_coef: Float = _cfg("kl_coef", ge=0, le=100)
    updates: Int = _cfg("updates", ge=1, le=1_000_000)
    ppo_epochs: Int = _cfg("ppo_epochs", ge=1, le=100)
    num_minibatches: Int = _cfg("num_minibatches", ge=1, le=4096)
    learning_rate: Float = _cfg("learning_rate", gt=0, le=1)
    checkpoint_every: Int = _cfg("checkpoint_every", ge=0, le=1_000_000)
    # --- RLOO's own
    samples_per_prompt: Int = _cfg("samples_per_prompt", ge=MIN_SAMPLES, le=256)
    advantage: AdvantageKind = _cfg("advantage")
    kl_penalty: KLPenalty = _cfg("kl_penalty")
    kl_estimator: KLChoice = _cfg("kl_estimator")
