"""Train a reward model on judged pairs with the Bradley–Terry loss −log σ(r(x, y_w) − r(x, y_l) − m).

Chosen and rejected texts go through the model in one forward pass (one padded [2B, T] batch),
batches are padded dynamically and grouped by length, and the loop runs through accelerate, so the
same call trains on the CPU, one GPU or, under ``accelerate launch``, many. Prompts are split between
training and validation so that none is on both sides; validation accuracy and loss are reported at the
end and written to the model's card. With ``target="elo"`` the reward is instead regressed on each
response's Elo over the training judgements, a Bradley–Terry head learning beside it (``elo_head``).

    result = train_reward_model(examples, RewardConfig(epochs=2), "/models/reward-3", reporter=job_reporter)
    result.metrics  # {"val_accuracy": 0.71, "val_loss": 0.55, "val_margin": 0.9}
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Unpack

import torch
from torch import nn

from app.training.core.batches import PairCollator
from app.training.core.data import PreferenceExample
from app.training.core.heads import PooledHeadModel
from app.training.core.pipeline import HeadJob, PackedBatches, RunOptions, train_head_model
from app.training.core.prefix import SharedPrefixCollator, packed_length
from app.training.core.result import TrainResult
from app.training.reward.config import RewardConfig
from app.training.reward.elo_head import elo_job
from app.training.reward.pairs import (
    batch_scores,
    bradley_terry_step,
    decided_only,
    encode_pairs,
    pair_length,
    pair_metrics,
    score_pairs,
    with_ties_balanced,
)

__all__ = ["encode_pairs", "evaluate_pairs", "reward_step", "train_reward_model"]


def reward_step(
    model: nn.Module, batch: dict[str, torch.Tensor], *, center_coefficient: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley–Terry loss of one batch, both sides scored in a single forward pass."""
    return bradley_terry_step(batch_scores(model, batch)[:, 0], batch, center_coefficient)  # [2B]: chosen, rejected


def evaluate_pairs(
    model: PooledHeadModel, rows: Sequence[dict[str, Any]], pad_id: int, batch_size: int, device: torch.device | str
) -> dict[str, float]:
    """Pairwise accuracy, BT loss (without margin) and mean reward gap on encoded decided pairs; the mean
    gap between tied pairs' rewards (``tie_gap``) when there are any."""
    if not rows:
        return {}
    chosen, rejected = score_pairs(model, rows, pad_id, batch_size, device)
    tie = torch.tensor([row.get("tie", 0.0) for row in rows], dtype=torch.float32)
    return pair_metrics(chosen[:, 0], rejected[:, 0], tie)


def reward_job(config: RewardConfig) -> HeadJob:
    """The reward model as a :class:`HeadJob`: one scalar output, pairs in, Bradley–Terry loss; or, with
    ``target: elo``, the Elo regression head and a Bradley–Terry head beside it (``elo_head``)."""
    if config.target == "elo":
        return elo_job(config)
    return HeadJob(
        kind="reward",
        labels=["reward"],
        encode=partial(encode_pairs, margin=config.margin),
        length=pair_length,
        collate=PairCollator,
        loss=partial(reward_step, center_coefficient=config.center_rewards_coefficient),
        evaluate=evaluate_pairs,
        packed=PackedBatches(packed_length, SharedPrefixCollator),
        training_rows=with_ties_balanced if config.learn_from_ties else decided_only,
    )


def train_reward_model(
    examples: Sequence[PreferenceExample], config: RewardConfig, output_dir: Path | str, **options: Unpack[RunOptions]
) -> TrainResult[PooledHeadModel]:
    """Train, validate and save a reward model to ``output_dir`` (which must not exist yet).

    ``backbone``/``tokenizer`` replace ``config.backbone`` with already built objects (tests, notebooks).
    Re-run with the same arguments after a crash or a stop, it resumes from ``checkpoint_path`` (default:
    a hidden file beside ``output_dir``); if ``output_dir`` already holds this very run, its card is returned.
    Raises :class:`~app.training.core.loop.TrainingStopped` when the reporter asked to stop.
    """
    return train_head_model(reward_job(config), examples, config, output_dir, **options)
