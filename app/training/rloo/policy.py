"""RLOO's trained module: PPO's actor without the critic.

The baseline of a response is the other responses to its prompt, so no value function is learnt;
everything else — one trunk pass for log π, KV-cached sampling, π_ref as the same weights with the
LoRA adapters disabled (or a frozen copy with full fine-tuning) — is PPO's
:class:`~app.training.ppo.policy.ActorCritic`, reused as is.
"""

from __future__ import annotations

import torch
from torch import nn

from app.training.ppo.config import PolicyGradientConfig
from app.training.ppo.policy import ActorCritic, trainable_policy


class PolicyModel(ActorCritic):
    """log π_θ (at temperature τ) of response tokens; no value head, so nothing but the policy trains."""

    def __init__(self, lm: nn.Module, *, temperature: float) -> None:
        super().__init__(lm, temperature=temperature)
        self.value_head = None  # dropped before any optimizer or checkpoint sees it

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        """Zeros: what the shared sampler records as V, which RLOO never reads. [..., H] → [...]."""
        return hidden.new_zeros(hidden.shape[:-1], dtype=torch.float32)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,  # type: ignore[override]
        tokens: torch.Tensor,
    ) -> torch.Tensor:
        """log π(token) [B, T] for the T response ``tokens`` at the end of ``input_ids``."""
        hidden = self.hidden(input_ids, attention_mask)[:, -tokens.shape[1] - 1 : -1]  # states before each token
        return self.token_logprobs(hidden, tokens)


def build_policy(config: PolicyGradientConfig, lm: nn.Module) -> tuple[PolicyModel, nn.Module | None]:
    """(policy, frozen reference or None), the adapters' init seeded with ``config.seed``."""
    lm, frozen = trainable_policy(config, lm)
    policy = PolicyModel(lm, temperature=config.temperature)
    policy.train()
    return policy, frozen
