"""The mathematics of PPO for language models, as pure tensor functions.

Each function reads like its formula in DESIGN.md ("The mathematics"), so the trainer's loss stays
short and every piece is unit-tested on hand-computed numbers. Nothing here touches a model, a
tokenizer, FastAPI or the database.

Shapes: ``B`` sequences in a batch, ``T`` response tokens (right-padded: real tokens first, then
padding), ``V`` vocabulary entries. A ``mask`` is ``(B, T)``, 1 on real response tokens and 0 on
padding; it may be bool or float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

KLKind = Literal["k1", "k2", "k3"]


# --- masked statistics -------------------------------------------------------------------------


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1.

    Padding must not dilute a mean, or short responses would count for less than long ones. An
    all-padding selection gives 0 rather than NaN, so one empty row cannot poison a batch.
    """
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``values`` over the masked positions (all of them together).

    ``unbiased`` applies Bessel's correction n / (n − 1), as whitening of advantages expects.
    """
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.to(values.dtype).sum()
        if n < 2:
            raise ValueError("an unbiased variance needs at least two unmasked values")
        variance = variance * n / (n - 1)
    return variance


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(values − mean) / std over the masked positions; padding is set to 0.

    Whitening advantages keeps the policy-gradient step the same size whatever the reward scale.
    ``shift_mean=False`` divides by the std but keeps the mean, which is how rewards are scaled
    without changing their sign on average.
    """
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_var(values, mask) + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(values.dtype)


# --- advantages ----------------------------------------------------------------------------------


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over right-padded response tokens.

    δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γ·λ·A_{t+1}, with V and A zero after the last real
    token, so a response ends its own episode. Returns (advantages, returns = A + V), both (B, T)
    and 0 on padding. Call it under ``torch.no_grad()``: these are targets, not graph nodes.
    """
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask  # (B, T)
    steps = rewards.shape[1]
    next_advantage = torch.zeros_like(values[:, 0])  # (B,)
    reversed_advantages = []
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(next_advantage)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        reversed_advantages.append(next_advantage)
    advantages = torch.stack(reversed_advantages[::-1], dim=1)  # (B, T)
    return advantages, (advantages + values) * mask


# --- KL to the reference and the per-token reward ------------------------------------------------


def kl_k1(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """k1 = log π − log π_ref: the unbiased, high-variance KL estimate (can be negative)."""
    return logp - logp_ref


def kl_k2(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """k2 = ½ (log π − log π_ref)²: biased but low-variance and never negative."""
    return 0.5 * (logp - logp_ref) ** 2


def kl_k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """k3 = (r − 1) − log r with r = π_ref/π: unbiased, low-variance and never negative."""
    log_ratio = logp_ref - logp
    return torch.exp(log_ratio) - 1.0 - log_ratio


_KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def kl_estimate(logp: Tensor, logp_ref: Tensor, kind: KLKind = "k1") -> Tensor:
    """Per-token estimate of KL(π ‖ π_ref) from tokens sampled by π (Schulman's k1/k2/k3)."""
    if kind not in _KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; expected one of k1, k2, k3")
    return _KL_ESTIMATORS[kind](logp, logp_ref)


def token_rewards(
    score: Tensor,
    logp: Tensor,
    logp_ref: Tensor,
    mask: Tensor,
    beta: float,
    *,
    kl_kind: KLKind = "k1",
    has_eos: Tensor | None = None,
    missing_eos_penalty: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Per-token reward −β·KL_t, plus the reward model's score at the last real token.

    The KL term keeps the policy near the reference on every token; the score judges the whole
    response, so it arrives once, at the end. A response that never emitted EOS (cut at the length
    limit) has ``missing_eos_penalty`` taken off its score, so the policy is not paid for rambling.
    ``score`` and ``has_eos`` are (B,); returns (rewards, kl), both (B, T) and 0 on padding.
    """
    mask = mask.to(logp.dtype)
    kl = kl_estimate(logp, logp_ref, kl_kind) * mask  # (B, T)
    if has_eos is not None:
        score = score - missing_eos_penalty * (~has_eos.bool()).to(score.dtype)  # (B,)
    positions = torch.arange(mask.shape[1], device=mask.device, dtype=mask.dtype)  # (T,)
    last = (positions * mask).argmax(dim=1, keepdim=True)  # (B, 1) index of the last real token
    rewards = (-beta * kl).scatter_add(1, last, score.to(kl.dtype).unsqueeze(1))  # (B, T)
    return rewards * mask, kl


# --- losses --------------------------------------------------------------------------------------


def policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip_range: float = 0.2
) -> tuple[Tensor, Tensor, Tensor]:
    """Clipped surrogate: mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)) with ρ = π/π_old.

    The clip removes any incentive to move ρ beyond [1−ε, 1+ε] in the direction the advantage
    favours, which keeps each update close to the policy that sampled the data. Returns
    (loss, clip_fraction, approx_kl); the last two are detached diagnostics: the share of tokens
    where the clip is active, and KL(π_old ‖ π) by the k3 estimator on the sampled tokens.
    """
    ratio = torch.exp(logp - old_logp)  # (B, T)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(logp.dtype), mask)
        approx_kl = masked_mean(kl_k3(old_logp, logp), mask)
    return loss, clip_fraction, approx_kl


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float = 0.2
) -> tuple[Tensor, Tensor]:
    """½·mean of max((V − R)², (V_clip − R)²), V_clip = V_old + clip(V − V_old, −ε, ε).

    Clipping the value head the same way as the policy stops one batch of noisy returns from
    dragging it far from its previous estimate. Returns (loss, clip_fraction).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped = (values - returns) ** 2  # (B, T)
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped > unclipped).to(values.dtype), mask)
    return loss, clip_fraction


# --- distributions from logits -------------------------------------------------------------------


def logprobs_from_logits(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    """log π(label) under softmax(logits / temperature); logits (B, T, V), labels (B, T) → (B, T).

    Tokens sampled at a temperature came from the tempered distribution, so the ratio π/π_old and
    the KL must be computed under the same temperature or PPO optimises the wrong policy.
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    logp_all = torch.log_softmax(logits / temperature, dim=-1)  # (B, T, V)
    return logp_all.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy −Σ p·log p of each token's distribution; logits (B, T, V) → (B, T)."""
    logp_all = torch.log_softmax(logits, dim=-1)
    return -(logp_all.exp() * logp_all).sum(dim=-1)


def masked_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean entropy over real response tokens: the signal that shows the policy collapsing."""
    return masked_mean(token_entropy(logits), mask)


# --- β controllers -------------------------------------------------------------------------------


class KLController(Protocol):
    """What the trainer needs of a β controller: the current β and a per-batch update."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> float: ...


@dataclass
class FixedKLController:
    """β held constant: the simplest choice, and the one to use when comparing runs."""

    value: float  # β, the weight of the KL penalty in the per-token reward

    def update(self, current_kl: float, n_steps: int) -> float:
        """Ignore the observed KL; return β unchanged."""
        return self.value


@dataclass
class AdaptiveKLController:
    """β steered towards a target KL (Ziegler et al. 2019, Fine-Tuning LMs from Human Preferences).

    e = clip(KL / target − 1, −0.2, 0.2); β ← β·(1 + e·n_steps / horizon). Too much KL raises β,
    too little lowers it; the clip and the horizon keep each change small.
    """

    value: float  # β now; starts at the initial coefficient
    target: float  # the KL to the reference we aim for, in nats per sequence
    horizon: int  # how many samples the correction is spread over

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError("target and horizon must be positive")

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move β by the clipped proportional error, scaled by the samples just seen."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value
