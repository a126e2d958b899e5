"""One PPO update's optimisation: rewards → GAE advantages → epochs of clipped-surrogate minibatch steps.

Statistics that span the batch (advantage whitening, the token count a minibatch's loss is averaged
over) are summed across processes, so N processes with B/N responses each compute the same update as one
process with all B — the gradient DDP averages is the gradient of the global token mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Self

import torch
from torch import nn

from app.training.ppo.config import PolicyGradientConfig, PPOConfig
from app.training.ppo.math import gae, policy_loss, token_rewards, value_loss
from app.training.ppo.rollout import Rollout

ReduceSum = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over processes (identity on one)
# (model, micro-batch, config) → (loss, detached statistics): one forward and the loss of one micro-batch.
StepLoss = Callable[[nn.Module, Any, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def whiten_across(values: torch.Tensor, mask: torch.Tensor, reduce_sum: ReduceSum, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the masked tokens of every process; padding set to 0.

    On one process it equals ``ppo_math.masked_whiten`` (unbiased variance)."""
    mask = mask.to(values.dtype)
    total, count = reduce_sum(torch.stack([(values * mask).sum(), mask.sum()])).unbind()
    if count < 2:
        raise ValueError("whitening needs at least two response tokens in the batch")
    mean = total / count
    variance = reduce_sum(((values - mean) ** 2 * mask).sum()) / (count - 1)
    return (values - mean) * torch.rsqrt(variance + eps) * mask


@dataclass
class SequenceBatch:
    """Sampled sequences and what a loss reads per response token; PPO's and RLOO's batches extend it.

    Fields other than the two [B, P + T] sequence tensors are per response token ([B, T]) or per
    response ([B]); :meth:`select` trims the first kind with the sequences."""

    input_ids: torch.Tensor  # [B, P + T]
    attention_mask: torch.Tensor  # [B, P + T]
    mask: torch.Tensor  # [B, T]
    logprobs: torch.Tensor  # [B, T] log π_old

    def select(self, rows: torch.Tensor) -> Self:
        """The given rows, trimmed of columns that are padding in every one of them."""
        picked = {f.name: getattr(self, f.name)[rows] for f in fields(self)}
        width = int(picked["mask"].sum(0).nonzero().max()) + 1  # last response column in use
        prompt_width = self.input_ids.shape[1] - self.mask.shape[1]
        first = int(picked["attention_mask"][:, :prompt_width].sum(0).nonzero().min())  # first prompt column used
        cut = self.mask.shape[1] - width
        for name, value in picked.items():
            if name in ("input_ids", "attention_mask"):
                picked[name] = value[:, first : value.shape[1] - cut]
            elif value.dim() == 2:
                picked[name] = value[:, :width]
        return type(self)(**picked)

    @property
    def tokens(self) -> torch.Tensor:
        return self.input_ids[:, -self.mask.shape[1] :]  # [B, T]


@dataclass
class Experience(SequenceBatch):
    """What PPO's optimisation epochs read: the rollout's sequences plus values, advantages and returns."""

    values: torch.Tensor  # [B, T] V_old
    advantages: torch.Tensor  # [B, T]
    returns: torch.Tensor  # [B, T]


def make_experience(
    rollout: Rollout, beta: float, config: PPOConfig, reduce_sum: ReduceSum
) -> tuple[Experience, torch.Tensor]:
    """Per-token rewards (score at the end, −β·KL on every token), GAE, whitening. Returns (experience, kl)."""
    rewards, kl = token_rewards(
        rollout.scores - rollout.penalties,
        rollout.logprobs,
        rollout.ref_logprobs,
        rollout.mask,
        beta,
        kl_kind=config.kl_estimator,
        has_eos=rollout.ended,
        missing_eos_penalty=config.missing_eos_penalty,
    )
    advantages, returns = gae(rewards, rollout.values, rollout.mask, config.gamma, config.lam)
    if config.whiten_advantages:
        advantages = whiten_across(advantages, rollout.mask, reduce_sum)
    experience = Experience(
        rollout.input_ids, rollout.attention_mask, rollout.mask, rollout.logprobs, rollout.values, advantages, returns
    )
    return experience, kl


def ppo_loss(
    logprobs: torch.Tensor, values: torch.Tensor, batch: Experience, config: PPOConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = L_clip + c_v·L_V: the clipped surrogate on π/π_old plus the clipped value loss."""
    pg_loss, clip_fraction, approx_kl = policy_loss(
        logprobs, batch.logprobs, batch.advantages, batch.mask, config.clip_range
    )
    vf_loss, value_clip_fraction = value_loss(values, batch.values, batch.returns, batch.mask, config.value_clip_range)
    stats = {
        "policy_loss": pg_loss.detach(),
        "value_loss": vf_loss.detach(),
        "clip_fraction": clip_fraction,
        "approx_kl": approx_kl,
        "value_clip_fraction": value_clip_fraction,
    }
    return pg_loss + config.vf_coef * vf_loss, stats


def ppo_step_loss(
    model: nn.Module, batch: Experience, config: PPOConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's :data:`StepLoss`: log π and V from one forward of the actor-critic, then :func:`ppo_loss`."""
    logprobs, values = model(batch.input_ids, batch.attention_mask, batch.tokens)
    return ppo_loss(logprobs, values, batch, config)


def minibatch_plan(batch_size: int, config: PolicyGradientConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices of every minibatch of every epoch: a fresh shuffle per epoch."""
    size = batch_size // config.num_minibatches
    plan = []
    for _ in range(config.ppo_epochs):
        order = torch.randperm(batch_size, generator=generator)
        plan.extend(order[k * size : (k + 1) * size] for k in range(config.num_minibatches))
    return plan


def optimise(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Any,
    experience: SequenceBatch,
    config: PolicyGradientConfig,
    generator: torch.Generator,
    reduce_sum: ReduceSum,
    loss_fn: StepLoss = ppo_step_loss,
) -> dict[str, torch.Tensor]:
    """``ppo_epochs`` × ``num_minibatches`` optimizer steps; returns the statistics averaged over steps,
    each scaled by this process's token share × N (so their sum over processes / N is the global mean).

    ``loss_fn`` is PPO's by default; another trainer (RLOO) passes its own with its batch type."""
    plan = minibatch_plan(experience.mask.shape[0], config, generator)
    global_tokens = reduce_sum(torch.stack([experience.mask[rows].sum() for rows in plan]))  # [steps]
    micro_batch = config.micro_batch_size or experience.mask.shape[0]
    totals: dict[str, torch.Tensor] = {}
    for rows, tokens in zip(plan, global_tokens, strict=True):
        stats = accumulate_gradients(model, accelerator, experience, rows.split(micro_batch), tokens, config, loss_fn)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for name, value in stats.items():
            totals[name] = totals.get(name, 0) + value
    return {name: total / len(plan) for name, total in totals.items()}


def accumulate_gradients(
    model: nn.Module,
    accelerator: Any,
    experience: SequenceBatch,
    chunks: Sequence[torch.Tensor],
    global_tokens: torch.Tensor,
    config: PolicyGradientConfig,
    loss_fn: StepLoss = ppo_step_loss,
) -> dict[str, torch.Tensor]:
    """Backpropagate one minibatch, micro-batch by micro-batch, as the mean over its tokens on all processes.

    DDP averages gradients over N processes, so a micro-batch's token-mean loss is weighted by
    (its tokens × N / the minibatch's tokens on all processes); the statistics get the same weights."""
    totals: dict[str, torch.Tensor] = {}
    for i, rows in enumerate(chunks):
        batch = experience.select(rows)
        weight = batch.mask.sum() * accelerator.num_processes / global_tokens.clamp(min=1.0)
        sync = contextlib.nullcontext() if i == len(chunks) - 1 else accelerator.no_sync(model)
        with sync:  # gradients are all-reduced once per minibatch, after its last micro-batch
            loss, stats = loss_fn(model, batch, config)
            accelerator.backward(loss * weight)
        for name, value in stats.items():
            totals[name] = totals.get(name, 0) + value.float() * weight
    return totals
