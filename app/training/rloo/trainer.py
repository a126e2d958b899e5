"""Train a policy with RLOO (or GRPO) against a reward function, staying near the reference policy.

Per update: take the next ``batch_size`` prompts (global, split across processes) and sample
``samples_per_prompt`` (k) responses to each (KV-cached, tempered, cut at EOS, each from its own random
stream); score each (reward function − safety_weight × P(unsafe) − the missing-EOS penalty, − β·KL to π_ref
when the KL is in the reward); give each response its advantage against the rest of its group (leave-one-out
or GRPO's normalisation) and take ``ppo_epochs`` × ``num_minibatches`` clipped-surrogate steps with it,
plus β × the per-token KL when the KL is in the loss. No value function is learnt.

Everything around the update is PPO's run (:class:`~app.training.ppo.trainer.PPORun`): accelerate, the
prompt order, resumable checkpoints every ``checkpoint_every`` updates and on stop, the per-update
metrics through the reporter, and the merged policy saved atomically with its card.

    result = train_rloo(prompts, RLOOConfig(policy="/models/policy-3"), "/models/policy-4",
                        reward=RewardScorer("/models/reward-2"))
    result.metrics  # {"score": 1.7, "reward": 1.6, "kl": 2.1, "advantage_std": 0.4, "entropy": 1.9, "beta": …}
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack, cast

from torch import nn

from app.training.core.loop import TrainingStopped
from app.training.ppo.policy import PolicyModel
from app.training.ppo.rollout import PromptInput
from app.training.ppo.stats import update_stats
from app.training.ppo.trainer import PPOResult, PPORun, SamplingOptions, SamplingResult, split_across, train_sampling
from app.training.rloo.config import RLOOConfig
from app.training.rloo.policy import build_policy
from app.training.rloo.step import global_std, make_batch, rloo_step_loss

__all__ = ["RLOOResult", "TrainingStopped", "train_rloo"]


@dataclass
class RLOOResult(PPOResult):
    """Where the new policy is and how the run went: ``steps`` counts updates, ``history`` every update's
    metrics (PPO's names, plus ``advantage_std`` and, with the KL in the loss, ``kl_loss``)."""


def train_rloo(
    prompts: Sequence[PromptInput], config: RLOOConfig, output_dir: Path | str, **options: Unpack[SamplingOptions]
) -> RLOOResult:
    """Run RLOO and save the new policy to ``output_dir`` (which must not exist yet, unless it holds this run).

    The arguments are :func:`~app.training.ppo.trainer.train_ppo`'s, less the value model. Raises
    :class:`TrainingStopped` after a checkpoint when the reporter asked to stop; called again with the same
    arguments, it resumes there."""
    return cast(RLOOResult, train_sampling(_RLOORun, prompts, config, output_dir, **options))  # _RLOORun.RESULT


class _RLOORun(PPORun):
    """PPO's run with RLOO's models (no critic), batch (k samples per prompt) and update."""

    LABEL: ClassVar[str] = "RLOO"
    RESULT: ClassVar[type[SamplingResult]] = RLOOResult
    config: RLOOConfig
    policy: PolicyModel

    def local_batch_size(self, processes: int) -> int:
        """Prompts per process; their k samples each must split evenly into minibatches."""
        config = self.config
        local = split_across("batch_size", config.batch_size, processes)
        if (local * config.samples_per_prompt) % config.num_minibatches:
            raise ValueError(
                f"num_minibatches: {local * config.samples_per_prompt} responses per process do not "
                f"split into {config.num_minibatches} minibatches"
            )
        return local

    def build_models(
        self, lm: nn.Module, value_model: nn.Module | str | None, vocab_size: int
    ) -> tuple[nn.Module, nn.Module | None]:
        return build_policy(self.config, lm)

    @property
    def batch_description(self) -> str:
        config, processes = self.config, self.accelerator.num_processes
        return f"{config.batch_size} prompts × {config.samples_per_prompt} samples on {processes} process(es)"

    def _iterate(self, update: int) -> dict[str, float]:
        """k samples per prompt → group advantages → optimisation → β; returns the update's global metrics."""
        config = self.config
        rollout = self._rollout(update, config.samples_per_prompt)
        beta = self.controller.value
        batch, kl, _ = make_batch(rollout, beta, config)
        losses, learning_rate = self._optimise(batch, update, functools.partial(rloo_step_loss, beta=beta))
        stats = update_stats(rollout, kl, losses, beta, config, self.reduce_sum, self.accelerator.num_processes)
        self.controller.update(stats["kl"], config.responses)
        return {**stats, "advantage_std": global_std(batch.advantages, self.reduce_sum), "learning_rate": learning_rate}
