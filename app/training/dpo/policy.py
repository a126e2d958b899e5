"""The model DPO trains: PPO's :class:`ActorCritic` without a critic, and its reference.

DPO needs log π of given response tokens under the policy and under π_ref, and (online) PPO's batched
KV-cache sampling; ActorCritic already does all three from one trunk (the reference being the very same
module with its LoRA adapters disabled, so no second copy of the weights exists). What differs: there is
no value function (PPO's critic-free :class:`~app.training.ppo.policy.PolicyModel`), and the loss reads
the *untempered* policy, while sampling may use a temperature.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from app.training.core.logprobs import sampled_token_logprobs
from app.training.dpo.config import DPOBaseConfig
from app.training.ppo.policy import PolicyModel, load_policy, trainable_policy


class DPOPolicy(PolicyModel):
    """``forward`` gives log π(token) at temperature 1; ``temperature`` is the sampling one only."""

    def __init__(self, lm: nn.Module, *, temperature: float = 1.0) -> None:
        super().__init__(lm, temperature=temperature)

    def loss_logprobs(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Untempered: the DPO loss compares π itself with π_ref, whatever the sampling temperature."""
        return sampled_token_logprobs(hidden, self.causal_lm.get_output_embeddings(), tokens)


def build_policy(
    config: DPOBaseConfig, lm: nn.Module | None = None, tokenizer: Any = None, *, temperature: float = 1.0
) -> tuple[DPOPolicy, nn.Module | None, Any]:
    """(policy, frozen reference or None, tokenizer) from ``config.policy`` unless built objects are given.

    With LoRA the reference is ``policy.reference(None)``: the adapters off. Seeds the adapters' init."""
    lm, tokenizer = load_policy(config, lm, tokenizer)
    lm, frozen = trainable_policy(config, lm, seed=config.seed)
    policy = DPOPolicy(lm, temperature=temperature)
    policy.train()
    return policy, frozen, tokenizer
