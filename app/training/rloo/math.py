"""The mathematics of RLOO and GRPO, as pure tensor functions on hand-checkable numbers.

A prompt's k responses form a group, laid out adjacently: rewards ``[P·k]`` (or ``[P, k]``) with the
samples of prompt p at rows p·k … p·k + k − 1. Each response's reward is one number for the whole
sequence (the score at its end, less its penalties), so an advantage is per response and every token
of the response shares it. Nothing here touches a model, a tokenizer, FastAPI or the database.
"""

from __future__ import annotations

from torch import Tensor

GRPO_EPS = 1e-4  # keeps a group whose rewards almost agree from blowing its advantages up (TRL's choice)


def grouped(rewards: Tensor, k: int) -> Tensor:
    """``[P·k]`` → ``[P, k]``: one row per prompt."""
    if k < 2 or rewards.numel() % k:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of k = {k} ≥ 2")
    return rewards.reshape(-1, k)


def leave_one_out(rewards: Tensor, k: int) -> Tensor:
    """A_i = r_i − (Σ_{j≠i} r_j) / (k − 1): each response against the mean of its group's others.

    The baseline of sample i does not depend on sample i, so the estimate stays unbiased while the
    group's shared difficulty cancels out. Equals k/(k − 1)·(r_i − mean). ``[P·k]`` → ``[P·k]``."""
    groups = grouped(rewards, k)
    others = (groups.sum(1, keepdim=True) - groups) / (k - 1)
    return (groups - others).reshape(rewards.shape)


def group_normalised(rewards: Tensor, k: int, eps: float = GRPO_EPS) -> Tensor:
    """A_i = (r_i − mean) / (std + eps) over the group (GRPO); std with Bessel's correction.

    Dividing by the group's spread gives every prompt the same weight whatever its reward scale; a group
    of equal rewards gets advantages 0. ``[P·k]`` → ``[P·k]``."""
    groups = grouped(rewards, k)
    centred = groups - groups.mean(1, keepdim=True)
    return (centred / (groups.std(1, keepdim=True) + eps)).reshape(rewards.shape)


def advantages(rewards: Tensor, k: int, kind: str) -> Tensor:
    """The advantages ``kind`` names: 'rloo' (:func:`leave_one_out`) or 'grpo' (:func:`group_normalised`)."""
    if kind == "rloo":
        return leave_one_out(rewards, k)
    if kind == "grpo":
        return group_normalised(rewards, k)
    raise ValueError(f"unknown advantage {kind!r}; expected rloo or grpo")


def sequence_rewards(
    scores: Tensor,
    penalties: Tensor,
    ended: Tensor,
    kl: Tensor,
    beta: float,
    *,
    missing_eos_penalty: float,
    kl_in_reward: bool,
) -> Tensor:
    """r_i = score − safety penalty − missing_eos_penalty·[no EOS] (− β·Σ_t KL_t with the KL in the reward).

    ``kl`` is the per-token KL ``[B, T]`` (0 on padding); the rest are ``[B]``. The KL of the whole
    response is charged once, like its score, so the baseline removes it for the group too."""
    rewards = scores - penalties - missing_eos_penalty * (~ended.bool()).to(scores.dtype)
    if kl_in_reward:
        rewards = rewards - beta * kl.sum(1).to(scores.dtype)
    return rewards
