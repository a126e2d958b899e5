"""Parameters of the ``ppo`` job, validated when the job is queued (API, dashboard form, CLI alike).

The job's own fields and the settings it shares with the ``rloo`` job are
:class:`~app.finetune.core.policy_params.PolicyParams`'; the value function's are declared here. All the
training fields are :class:`~app.training.ppo.config.PPOConfig`'s, defaults and help text taken from it
(:func:`~app.finetune.core.params.config_params`), so the API schema, the launch form and the trainer
describe a field in the same words. The defaults are the config's except four. Three were
measured by ``bench/closed_loop.py`` on two CPU cores with the SmolLM2 policy and a MiniLM reward
model: 20 updates at a LoRA learning rate of 1e-3 (≈ 8 min) move the policy where the reward model
points, while the config's 1e-4 barely moves it in 30; β sets how far. Win rate on held-out pairs
under the rule the reward model learnt, and KL per token over the last quarter of the updates:
β 0.05 98 % at 1.05 nats; β 0.07 92 % at 0.34; β 0.1 79 % at 0.23 and 65 % at 0.14 (two runs);
β 0.2 73 % at 0.12. β 0.07 moves the policy well within half a nat per token. The fourth,
checkpoint_every 5, suits those 20 updates: a worker that dies loses at most a quarter of the run,
where the config's 10 could lose half.

Checks that involve two fields (batch_size vs num_minibatches, …) are the config's own ``validate``,
run here too, and reported at the field it names. Kept free of torch: the web app imports it to
validate a job before queueing it.
"""

from __future__ import annotations

from typing import ClassVar, Literal, cast

from pydantic import Field

from app.finetune.core.params import config_params
from app.finetune.core.policy_params import PolicyParams
from app.training.ppo.config import PPOConfig

# The job's own fields; the rest are PPOConfig's. value_model is here too: the job's "head"/"reward"
# choice, which ppo_config turns into the config's value_model (a folder, or "").
JOB_OWN = (*PolicyParams.JOB_OWN, "value_model")


class PPOJob(PolicyParams):
    """PolicyParams with the ``ppo`` job's own choice of value model, before PPO's settings."""

    CONFIG: ClassVar[type[PPOConfig]] = PPOConfig
    JOB_OWN: ClassVar[tuple[str, ...]] = JOB_OWN

    value_model: Literal["head", "reward"] = Field(
        "head",
        description="'head': a value head on the policy's hidden states; 'reward': a separate value model "
        "initialised from the reward version (it must be a causal LM sharing the policy's tokenizer).",
    )


_PPOSettings = config_params(
    PPOConfig,
    ("kl_coef", "updates", "learning_rate", "checkpoint_every"),  # PolicyParams', with the job's defaults below
    ("kl_estimator", "value_clip_range", "vf_coef", "gamma", "lam", "whiten_advantages"),  # PPO's own
    base=PPOJob,
    defaults={"kl_coef": 0.07, "updates": 20, "learning_rate": 1e-3, "checkpoint_every": 5},  # see the docstring
)


class PPOParams(_PPOSettings):
    """A ``ppo`` job: the policy, the reward it chases, the prompts, and PPO's hyper-parameters."""

    def trainer_config(self, *, policy: str, value_model: str = "") -> PPOConfig:
        """The trainer's config: the training fields, the resolved policy folder and value model."""
        return cast(PPOConfig, super().trainer_config(policy=policy, value_model=value_model))  # CONFIG builds it

    def ppo_config(self, *, policy: str, value_model: str = "") -> PPOConfig:
        """:meth:`trainer_config`, by the name the ``ppo`` job calls it."""
        return self.trainer_config(policy=policy, value_model=value_model)
