"""Parameters of the ``ppo`` job, validated when the job is queued (API, dashboard form, CLI alike).

The training fields are :class:`~app.training.ppo.config.PPOConfig`'s, with its help text, so the API
schema, the launch form and the trainer describe a field in the same words; their defaults are the
config's except three, measured by ``bench/closed_loop.py`` on two CPU cores with the SmolLM2 policy and
a MiniLM reward model: 20 updates at a LoRA learning rate of 1e-3 (≈ 8 min) move the policy where the
reward model points, while the config's 1e-4 barely moves it in 30; β sets how far. Win rate on
held-out pairs under the rule the reward model learnt, and KL per token over the last quarter of the
updates: β 0.05 98 % at 1.05 nats; β 0.07 92 % at 0.34; β 0.1 79 % at 0.23 and 65 % at 0.14 (two runs);
β 0.2 73 % at 0.12. β 0.07 moves the policy well within half a nat per token.

Checks that involve two fields (batch_size vs num_minibatches, …) are the config's own ``validate``,
run here too, and reported at the field it names. Kept free of torch: the web app imports it to
validate a job before queueing it.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.training.ppo.config import KLKind, MixedPrecision, PPOConfig, config_help

HELP = config_help(PPOConfig)
CONFIG_DEFAULTS = {f.name: f.default for f in fields(PPOConfig) if f.default is not MISSING}
JOB_OWN = ("name", "policy_version_id", "reward_version_id", "classifier_version_id", "value_model", "prompt_set_ids")
MAX_IDS = 1000


def _cfg(name: str, default: Any = MISSING, **bounds: Any) -> Any:  # noqa: ANN401 - a pydantic FieldInfo
    """A field mirroring ``PPOConfig.<name>``: its help, its default unless the job's differs, ``bounds``."""
    return Field(CONFIG_DEFAULTS[name] if default is MISSING else default, description=HELP[name], **bounds)


class PPOParams(BaseModel):
    """A ``ppo`` job: the policy, the reward it chases, the prompts, and PPO's hyper-parameters."""

    model_config = ConfigDict(extra="forbid")
    # --- what is trained, against what, on what
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                             description="Name of the new policy version; default: ppo-job<job id>.")
    policy_version_id: int | None = Field(None, ge=1, description="Policy version to train; default: the promoted "
                                          "one. The new version's parent.")
    reward_version_id: int | None = Field(None, ge=1, description="Reward version whose score is the reward; "
                                          "default: the latest ready one.")
    classifier_version_id: int | None = Field(None, ge=1, description="Classifier version for the safety penalty "
                                              "(reward − safety_weight × P(unsafe)); empty: no penalty.")
    value_model: Literal["head", "reward"] = Field(
        "head", description="'head': a value head on the policy's hidden states; 'reward': a separate value model "
        "initialised from the reward version (it must be a causal LM sharing the policy's tokenizer).")
    prompt_set_ids: list[int] | None = Field(None, max_length=MAX_IDS, description="Train on the prompts of these "
                                             "sets; default: every active set. Retired prompts are left out.")
    # --- the trainer's settings
    use_lora: bool = _cfg("use_lora")
    lora_r: int = _cfg("lora_r", ge=1, le=1024)
    lora_alpha: int = _cfg("lora_alpha", ge=1, le=4096)
    lora_dropout: float = _cfg("lora_dropout", ge=0, lt=1)
    lora_target_modules: str = _cfg("lora_target_modules", max_length=500)
    batch_size: int = _cfg("batch_size", ge=1, le=4096)
    max_prompt_length: int = _cfg("max_prompt_length", ge=1, le=32768)
    response_length: int = _cfg("response_length", ge=1, le=8192)
    temperature: float = _cfg("temperature", gt=0, le=10)
    missing_eos_penalty: float = _cfg("missing_eos_penalty", ge=0, le=100)
    safety_weight: float = _cfg("safety_weight", ge=0, le=100)
    safety_head: str = _cfg("safety_head", min_length=1, max_length=100)
    kl_coef: float = _cfg("kl_coef", 0.07, ge=0, le=100)
    kl_estimator: KLKind = _cfg("kl_estimator")
    target_kl: float = _cfg("target_kl", ge=0, le=1000)
    kl_horizon: int = _cfg("kl_horizon", ge=1, le=10_000_000)
    updates: int = _cfg("updates", 20, ge=1, le=1_000_000)
    ppo_epochs: int = _cfg("ppo_epochs", ge=1, le=100)
    num_minibatches: int = _cfg("num_minibatches", ge=1, le=4096)
    micro_batch_size: int = _cfg("micro_batch_size", ge=0, le=4096)
    learning_rate: float = _cfg("learning_rate", 1e-3, gt=0, le=1)
    weight_decay: float = _cfg("weight_decay", ge=0, le=1)
    max_grad_norm: float = _cfg("max_grad_norm", ge=0, le=1000)
    clip_range: float = _cfg("clip_range", gt=0, le=10)
    value_clip_range: float = _cfg("value_clip_range", gt=0, le=1000)
    vf_coef: float = _cfg("vf_coef", ge=0, le=100)
    gamma: float = _cfg("gamma", ge=0, le=1)
    lam: float = _cfg("lam", ge=0, le=1)
    whiten_advantages: bool = _cfg("whiten_advantages")
    seed: int = _cfg("seed", ge=0, le=2**31 - 1)
    log_every: int = _cfg("log_every", ge=1, le=1_000_000)
    checkpoint_every: int = _cfg("checkpoint_every", 5, ge=0, le=1_000_000)
    num_threads: int = _cfg("num_threads", ge=0, le=256)
    use_cpu: bool = _cfg("use_cpu")
    mixed_precision: MixedPrecision = _cfg("mixed_precision")

    @model_validator(mode="after")
    def _consistent(self) -> PPOParams:
        """The trainer's own cross-field checks, reported at the field they name."""
        try:
            self.ppo_config(policy="")
        except ValueError as exc:
            field, _, why = str(exc).partition(": ")
            loc = field if field in type(self).model_fields else "__root__"
            detail = InitErrorDetails(type=PydanticCustomError("value_error", why or str(exc)), loc=(loc,),
                                      input=getattr(self, loc, None))
            raise ValidationError.from_exception_data(type(self).__name__, [detail]) from None
        return self

    def ppo_config(self, *, policy: str, value_model: str = "") -> PPOConfig:
        """The trainer's config: the training fields, the resolved policy folder and value model."""
        values = {key: value for key, value in self.model_dump().items() if key not in JOB_OWN}
        return PPOConfig.from_dict({**values, "policy": policy, "value_model": value_model})
