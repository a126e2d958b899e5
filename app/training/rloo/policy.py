"""RLOO's trained module: PPO's actor without the critic.

The baseline of a response is the other responses to its prompt, so no value function is learnt;
everything else — one trunk pass for log π, KV-cached sampling, π_ref as the same weights with the
LoRA adapters disabled (or a frozen copy with full fine-tuning) — is PPO's
:class:`~app.training.ppo.policy.ActorCritic`, reused as is through its critic-free
:class:`~app.training.ppo.policy.PolicyModel`, whose loss reads the tempered log π (the responses' own).
"""

from __future__ import annotations

from torch import nn

from app.training.ppo.config import PolicyGradientConfig
from app.training.ppo.policy import PolicyModel, trainable_policy

__all__ = ["PolicyModel", "build_policy"]


def build_policy(config: PolicyGradientConfig, lm: nn.Module) -> tuple[PolicyModel, nn.Module | None]:
    """(policy, frozen reference or None), the adapters' init seeded with ``config.seed``."""
    lm, frozen = trainable_policy(config, lm, seed=config.seed)
    policy = PolicyModel(lm, temperature=config.temperature)
    policy.train()
    return policy, frozen
