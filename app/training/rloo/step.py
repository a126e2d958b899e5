"""One RLOO update's learning signal: sequence rewards → group advantages → the clipped-surrogate loss.

The optimisation loop itself (epochs of shuffled minibatches, micro-batches whose token-mean losses add up
across processes to the global token mean) is PPO's :func:`~app.training.ppo.step.optimise`, given
:func:`rloo_step_loss`. A prompt's k samples are drawn on one process, so the advantages need no
communication; only the reported statistics are summed across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from app.training.ppo.math import kl_estimate, masked_mean, policy_loss
from app.training.ppo.rollout import Rollout
from app.training.ppo.step import ReduceSum, SequenceBatch
from app.training.rloo.config import RLOOConfig
from app.training.rloo.math import advantages, sequence_rewards


@dataclass
class RLOOBatch(SequenceBatch):
    """What RLOO's optimisation epochs read: the rollout's sequences, π_ref and one advantage per response."""

    ref_logprobs: torch.Tensor  # [B, T] log π_ref, for the per-token KL when it is in the loss
    advantages: torch.Tensor  # [B]


def make_batch(rollout: Rollout, beta: float, config: RLOOConfig) -> tuple[RLOOBatch, torch.Tensor, torch.Tensor]:
    """(batch, per-token KL [B, T], sequence rewards [B]) of a rollout whose k samples per prompt are adjacent."""
    kl = kl_estimate(rollout.logprobs, rollout.ref_logprobs, config.kl_kind) * rollout.mask
    rewards = sequence_rewards(
        rollout.scores,
        rollout.penalties,
        rollout.ended,
        kl,
        beta,
        missing_eos_penalty=config.missing_eos_penalty,
        kl_in_reward=config.kl_penalty == "reward",
    )
    batch = RLOOBatch(
        rollout.input_ids,
        rollout.attention_mask,
        rollout.mask,
        rollout.logprobs,
        rollout.ref_logprobs,
        advantages(rewards, config.samples_per_prompt, config.advantage),
    )
    return batch, kl, rewards


def rloo_loss(
    logprobs: torch.Tensor, batch: RLOOBatch, beta: float, config: RLOOConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate with every token of a response sharing its advantage, plus β × the mean per-token
    KL to π_ref when ``kl_penalty`` is 'loss'. Token means, like PPO's, so long responses weigh more."""
    token_advantages = batch.advantages[:, None].expand_as(logprobs)
    loss, clip_fraction, approx_kl = policy_loss(
        logprobs, batch.logprobs, token_advantages, batch.mask, config.clip_range
    )
    stats = {"policy_loss": loss.detach(), "clip_fraction": clip_fraction, "approx_kl": approx_kl}
    if config.kl_penalty == "loss":
        kl_loss = masked_mean(kl_estimate(logprobs, batch.ref_logprobs, config.kl_kind), batch.mask)
        stats["kl_loss"] = kl_loss.detach()
        loss = loss + beta * kl_loss
    return loss, stats


def rloo_step_loss(
    model: nn.Module, batch: RLOOBatch, config: RLOOConfig, *, beta: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The :data:`~app.training.ppo.step.StepLoss` of RLOO (bind ``beta``): one policy forward, then the loss."""
    logprobs = model(batch.input_ids, batch.attention_mask, batch.tokens)
    return rloo_loss(logprobs, batch, beta, config)


def global_std(values: torch.Tensor, reduce_sum: ReduceSum) -> float:
    """Std (Bessel-corrected) of ``values`` over every process's: how hard an update pushes, which a
    group of equal rewards (std 0) does not at all."""
    count = torch.tensor(float(values.numel()), device=values.device)
    n, total, squares = reduce_sum(torch.stack([count, values.sum(), (values**2).sum()])).tolist()
    if n < 2:
        return 0.0
    return (max(squares - total * total / n, 0.0) / (n - 1)) ** 0.5
