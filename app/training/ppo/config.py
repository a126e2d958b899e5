"""Hyper-parameters of the PPO job, each with its help text in ``metadata["help"]``.

:class:`PolicyGradientConfig` holds what every trainer that samples from a causal-LM policy and
optimises it against a reward shares (the policy and its LoRA adapters, sampling, the reward and its
KL to the reference, the clipped-surrogate optimisation, the runtime); :class:`PPOConfig` adds the
value function and GAE. The defaults run on a laptop CPU with the default models (SmolLM2-135M-Instruct
policy trained through LoRA adapters, all-MiniLM-L6-v2 reward model): 8 prompts per update, 48 new
tokens, 2 PPO epochs. :meth:`PPOConfig.validate` (also run on construction) raises ``ValueError``
naming the offending field.

    config = PPOConfig(policy="/models/policy-3", updates=200, target_kl=6.0)
    config_help(PPOConfig)["target_kl"]  # the form's tooltip
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# config_help and MixedPrecision are re-exported: forms read a trainer's help and types from its config module.
from app.training.core.config import (  # noqa: F401
    MixedPrecision,
    OptimizerSettings,
    PolicySettings,
    RuntimeSettings,
    StoredConfig,
    config_help,
    require,
)
from app.training.core.config import help_field as _f  # short, so each field stays one readable line

KLKind = Literal["k1", "k2", "k3"]


@dataclass
class PolicyGradientConfig(StoredConfig, RuntimeSettings, OptimizerSettings, PolicySettings):
    """π_θ, a causal-LM policy, sampled and optimised against a reward near a frozen π_ref (PPO, RLOO)."""

    # --- models (the policy itself, use_lora and pad_token: PolicySettings)
    lora_dropout: float = _f(0.0, "Dropout on the LoRA input. Keep 0: dropout makes π/π_old noisy.")
    lora_target_modules: str = _f(
        "",
        "Comma-separated module names to adapt; '' = peft's default for the "
        "architecture (q_proj,v_proj for Llama); 'all-linear' = every linear layer.",
    )
    # --- rollouts
    batch_size: int = _f(8, "Prompts per update, across all processes (the global batch).")
    max_prompt_length: int = _f(256, "Prompt tokens kept (from the end) before generating.")
    response_length: int = _f(48, "Most tokens generated per response; responses stop at EOS.")
    temperature: float = _f(0.7, "Sampling temperature; the training forward divides logits by the same value.")
    missing_eos_penalty: float = _f(1.0, "Taken off the score of a response cut at response_length without EOS.")
    # --- reward
    safety_weight: float = _f(1.0, "With a classifier: reward = score − safety_weight × P(unsafe).")
    safety_head: str = _f("safety", "Classifier head whose label 1 means safe; P(unsafe) = 1 − P(head = 1).")
    kl_coef: float = _f(
        0.05, "β, the weight of the per-token KL penalty −β·(log π − log π_ref); initial β when target_kl > 0."
    )
    kl_estimator: KLKind = _f(
        "k1",
        "Per-token KL estimate in the reward: k1 = log π − log π_ref (unbiased), "
        "k2 = ½(log ratio)², k3 = (r − 1) − log r.",
    )
    target_kl: float = _f(0.0, "0 keeps β fixed; > 0 adapts β toward this KL per response (nats).")
    kl_horizon: int = _f(10000, "Responses over which the adaptive β correction is spread.")
    # --- optimisation
    updates: int = _f(100, "PPO updates: each samples one batch of responses and optimises on it.")
    ppo_epochs: int = _f(2, "Passes of optimisation over each batch of responses.")
    num_minibatches: int = _f(2, "Optimizer steps per PPO epoch; the batch is split into this many minibatches.")
    micro_batch_size: int = _f(
        0,
        "Sequences per forward/backward pass: a minibatch is split into micro-batches "
        "whose gradients add up to the same update, to bound memory. 0 = the whole minibatch.",
    )
    learning_rate: float = _f(
        1e-4, "Peak AdamW learning rate, decayed linearly to 0 over the updates (~1e-5 suits full fine-tuning)."
    )
    clip_range: float = _f(0.2, "ε of the clipped surrogate: ρ = π/π_old is clipped to [1 − ε, 1 + ε].")
    # --- runtime
    seed: int = _f(0, "Seeds the adapters' (and a value head's) init, the prompt order and the sampling.")
    log_every: int = _f(1, "Report metrics every this many updates.")
    checkpoint_every: int = _f(10, "Write a resumable checkpoint every this many updates; 0 only on stop.")

    def validate(self) -> None:
        """Raise ``ValueError("<field>: <why>")`` for the first invalid shared field."""
        for name in (
            "lora_r",
            "lora_alpha",
            "batch_size",
            "max_prompt_length",
            "response_length",
            "updates",
            "ppo_epochs",
            "num_minibatches",
            "kl_horizon",
            "log_every",
        ):
            require(name, getattr(self, name) >= 1, "must be ≥ 1")
        for name in ("checkpoint_every", "num_threads", "micro_batch_size"):
            require(name, getattr(self, name) >= 0, "must be ≥ 0")
        for name in ("temperature", "learning_rate", "clip_range"):
            require(name, getattr(self, name) > 0, "must be > 0")
        for name in ("missing_eos_penalty", "safety_weight", "kl_coef", "target_kl", "weight_decay", "max_grad_norm"):
            require(name, getattr(self, name) >= 0, "must be ≥ 0")
        require("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "must be in [0, 1)")
        require("mixed_precision", self.mixed_precision in ("no", "bf16", "fp16"), "must be no, bf16 or fp16")
        require("pad_token", bool(self.pad_token), "must not be empty")
        require("safety_head", bool(self.safety_head), "must not be empty")


@dataclass
class PPOConfig(PolicyGradientConfig):
    """PPO on a causal-LM policy: π_θ against a frozen π_ref, with a value function and GAE."""

    value_model: str = _f(
        "",
        "'' = a value head on the policy's last hidden states (one forward gives "
        "log-probs and values). A folder = a separate value model initialised from that "
        "reward model; it must be a causal LM sharing the policy's tokenizer.",
    )
    value_clip_range: float = _f(0.2, "Values move at most this far from the rollout's values per update.")
    vf_coef: float = _f(0.1, "Weight of the value loss in policy_loss + vf_coef × value_loss.")
    gamma: float = _f(1.0, "Discount γ of GAE.")
    lam: float = _f(0.95, "λ of GAE: 1 = Monte-Carlo returns, 0 = one-step TD.")
    whiten_advantages: bool = _f(True, "Normalise advantages to mean 0, std 1 over the batch's tokens.")

    def validate(self) -> None:
        """Raise ``ValueError("<field>: <why>")`` for the first invalid field."""
        super().validate()
        require("value_clip_range", self.value_clip_range > 0, "must be > 0")
        require("vf_coef", self.vf_coef >= 0, "must be ≥ 0")
        for name in ("gamma", "lam"):
            require(name, 0.0 <= getattr(self, name) <= 1.0, "must be in [0, 1]")
        require(
            "batch_size",
            self.batch_size % self.num_minibatches == 0,
            f"must be a multiple of num_minibatches ({self.num_minibatches})",
        )
        require("kl_estimator", self.kl_estimator in ("k1", "k2", "k3"), "must be k1, k2 or k3")
