"""The per-update metrics PPO reports, averaged over the whole global batch with one all-reduce.

score            mean reward-function score of the responses (before any penalty)
safety_penalty   mean safety_weight × P(unsafe) (0 without a classifier)
reward           mean total return: score − penalties − β·KL
kl               mean Σ_t KL_t per response (nats), the estimator set by kl_estimator
entropy          mean per-token entropy of the (tempered) sampling distribution
response_length  mean tokens per response;  eos_fraction  share of responses that ended with EOS
policy_loss, value_loss, clip_fraction, value_clip_fraction, approx_kl   means over optimizer steps
beta             the β the update's rewards used
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from app.training.ppo.config import PPOConfig
from app.training.ppo.rollout import Rollout


def update_stats(
    rollout: Rollout,
    kl: torch.Tensor,
    losses: dict[str, torch.Tensor],
    beta: float,
    config: PPOConfig,
    reduce_sum: Callable[[torch.Tensor], torch.Tensor],
    processes: int,
) -> dict[str, float]:
    """Global means of one update's rollout and optimisation statistics, as plain floats."""
    kl_per_response = kl.sum(1)  # [B]
    missing_eos = config.missing_eos_penalty * (~rollout.ended).float()
    per_response = {
        "score": rollout.scores,
        "safety_penalty": rollout.penalties,
        "reward": rollout.scores - rollout.penalties - missing_eos - beta * kl_per_response,
        "kl": kl_per_response,
        "response_length": rollout.mask.sum(1),
        "eos_fraction": rollout.ended.float(),
    }
    names = [*per_response, "entropy", *losses, "_responses", "_tokens"]
    local = torch.stack(
        [
            *(values.float().sum() for values in per_response.values()),
            (rollout.entropy * rollout.mask).sum(),
            *(value.float() for value in losses.values()),
            torch.tensor(float(rollout.mask.shape[0]), device=rollout.mask.device),
            rollout.mask.sum(),
        ]
    )
    totals = dict(zip(names, reduce_sum(local).tolist(), strict=True))
    responses, tokens = totals.pop("_responses"), totals.pop("_tokens")
    stats = {name: totals[name] / responses for name in per_response}
    stats["entropy"] = totals["entropy"] / max(tokens, 1.0)
    stats.update({name: totals[name] / processes for name in losses})
    stats["beta"] = float(beta)
    return stats
