"""Hyper-parameters of the RLOO job, each with its help text in ``metadata["help"]``.

RLOO (REINFORCE leave-one-out, Ahmadian et al. 2024) and GRPO (Shao et al. 2024) replace PPO's value
function by the other samples of the same prompt: each prompt is sampled ``samples_per_prompt`` (k)
times and a sample's advantage is its reward against the rest of its group. The policy, its LoRA
adapters, sampling, the safety penalty and the clipped optimisation are PPO's
(:class:`~app.training.ppo.config.PolicyGradientConfig`), so the two jobs read alike.

The defaults are provisional, general choices, not tuned to any one preference: k = 4, 8 prompts per
update (32 responses), 48 new tokens, LoRA r = 16 at a learning rate of 1e-3, β = 0.05, 20 updates,
2 clipped epochs. They stand until the closed-loop rule suite (``bench/closed_loop.py``) has measured
them, as it measured PPO's.

    config = RLOOConfig(policy="/models/policy-3", advantage="grpo", kl_penalty="loss")
    config_help(RLOOConfig)["advantage"]  # the form's tooltip
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# config_help is re-exported: forms read a trainer's help from its config module.
from app.training.core.config import config_help, require  # noqa: F401
from app.training.core.config import help_field as _f  # short, so each field stays one readable line
from app.training.ppo.config import KLKind, PolicyGradientConfig

AdvantageKind = Literal["rloo", "grpo"]
KLPenalty = Literal["reward", "loss"]
KLChoice = Literal["auto", "k1", "k2", "k3"]
MIN_SAMPLES = 4  # fewer leaves a baseline of one to three rewards: too noisy to be worth the samples


@dataclass
class RLOOConfig(PolicyGradientConfig):
    """RLOO / GRPO on a causal-LM policy: k samples per prompt, a group baseline, no value function."""

    # --- the PolicyGradientConfig fields whose meaning or default differs here
    batch_size: int = _f(
        8,
        "Prompts per update, across all processes; each is sampled samples_per_prompt "
        "times, so an update learns from batch_size × samples_per_prompt responses.",
    )
    kl_coef: float = _f(
        0.05,
        "β: with kl_penalty 'reward', each response's reward is score − β × Σ_t KL_t "
        "(before the baseline); with 'loss', β × the mean per-token KL is added to the loss. "
        "Initial β when target_kl > 0.",
    )
    kl_estimator: KLChoice = _f(
        "auto",
        "Per-token KL estimate: k1 = log π − log π_ref (unbiased), k2 = "
        "½(log ratio)², k3 = (r − 1) − log r. 'auto' = k1 in the reward, k3 (GRPO's) "
        "in the loss, where k1's gradient is zero on average.",
    )
    updates: int = _f(20, "RLOO updates: each samples batch_size × samples_per_prompt responses and optimises on them.")
    num_minibatches: int = _f(
        2,
        "Optimizer steps per epoch; the batch_size × samples_per_prompt responses are "
        "split into this many minibatches.",
    )
    ppo_epochs: int = _f(
        2,
        "Passes of clipped-surrogate optimisation over each batch; 1 (with num_minibatches "
        "1) is plain REINFORCE with the baseline, since π/π_old = 1 at the only step.",
    )
    learning_rate: float = _f(
        1e-3,
        "Peak AdamW learning rate, decayed linearly to 0 over the updates "
        "(for LoRA adapters; ~1e-5 suits full fine-tuning).",
    )
    checkpoint_every: int = _f(5, "Write a resumable checkpoint every this many updates; 0 only on stop.")
    # --- RLOO's own
    samples_per_prompt: int = _f(
        4, f"k, responses sampled per prompt (≥ {MIN_SAMPLES}); each one's baseline is the others' rewards."
    )
    advantage: AdvantageKind = _f(
        "rloo",
        "'rloo': A_i = r_i − the mean of the other k − 1 rewards of its "
        "prompt; 'grpo': A_i = (r_i − the group's mean) / the group's std.",
    )
    kl_penalty: KLPenalty = _f(
        "reward",
        "Where the KL to the reference enters: 'reward' = a sequence-level "
        "−β·KL per response (RLOO), 'loss' = a per-token KL penalty in the loss (GRPO).",
    )

    def validate(self) -> None:
        """Raise ``ValueError("<field>: <why>")`` for the first invalid field."""
        super().validate()
        require("samples_per_prompt", self.samples_per_prompt >= MIN_SAMPLES, f"must be ≥ {MIN_SAMPLES}")
        require("advantage", self.advantage in ("rloo", "grpo"), "must be rloo or grpo")
        require("kl_penalty", self.kl_penalty in ("reward", "loss"), "must be reward or loss")
        require("kl_estimator", self.kl_estimator in ("auto", "k1", "k2", "k3"), "must be auto, k1, k2 or k3")
        require(
            "kl_estimator",
            not (self.kl_penalty == "loss" and self.kl_estimator == "k1"),
            "k1's gradient is zero on average in the loss; use k2, k3 or auto with kl_penalty 'loss'",
        )
        require(
            "num_minibatches",
            self.responses % self.num_minibatches == 0,
            f"must divide the {self.responses} responses of an update (batch_size × samples_per_prompt)",
        )

    @property
    def responses(self) -> int:
        """Responses sampled per update, across all processes."""
        return self.batch_size * self.samples_per_prompt

    @property
    def kl_kind(self) -> KLKind:
        """The estimator ``kl_estimator`` stands for where ``kl_penalty`` puts the KL."""
        if self.kl_estimator == "auto":
            return "k3" if self.kl_penalty == "loss" else "k1"
        return self.kl_estimator
