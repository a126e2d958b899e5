"""Train a reward model on judged pairs with the Bradley–Terry loss −log σ(r(x, y_w) − r(x, y_l) − m).

Chosen and rejected texts go through the model in one forward pass (one padded [2B, T] batch),
batches are padded dynamically and grouped by length, and the loop runs through accelerate, so the
same call trains on the CPU, one GPU or, under ``accelerate launch``, many. Prompts are split between
training and validation so that none is on both sides; validation accuracy and loss are reported at the
end and written to the model's card.

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
from app.training.core.encode import encode_responses
from app.training.core.heads import PooledHeadModel
from app.training.core.pipeline import HeadJob, PackedBatches, RunOptions, train_head_model
from app.training.core.prefix import MODEL_INPUTS, SharedPrefixCollator, packed_length
from app.training.core.result import TrainResult
from app.training.core.scoring import predict_encoded
from app.training.reward.config import RewardConfig
from app.training.reward.loss import bradley_terry_loss, centering_penalty, pairwise_accuracy, strength_margins

__all__ = ["encode_pairs", "evaluate_pairs", "reward_step", "train_reward_model"]


def reward_step(
    model: nn.Module, batch: dict[str, torch.Tensor], *, center_coefficient: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley–Terry loss of one batch, both sides scored in a single forward pass."""
    rewards = model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS})[:, 0]  # [2B]: chosen, then rejected
    chosen, rejected = rewards.chunk(2)  # [B], [B]
    loss = bradley_terry_loss(chosen, rejected, batch["margin"])
    if center_coefficient > 0:
        loss = loss + center_coefficient * centering_penalty(chosen, rejected)
    with torch.no_grad():
        metrics = {"loss": loss, "accuracy": pairwise_accuracy(chosen, rejected), "margin": (chosen - rejected).mean()}
    return loss, metrics


def encode_pairs(
    tokenizer: Any, examples: Sequence[PreferenceExample], encoder: bool, max_length: int, *, margin: float = 0.0
) -> list[dict[str, Any]]:
    """Tokenise each pair's two sides once, up front (two batched tokenizer calls for the whole set)."""
    prompts = [ex.prompt for ex in examples]
    chosen = encode_responses(
        tokenizer, prompts, [ex.chosen for ex in examples], encoder=encoder, max_length=max_length
    )
    rejected = encode_responses(
        tokenizer, prompts, [ex.rejected for ex in examples], encoder=encoder, max_length=max_length
    )
    margins = strength_margins([ex.strength for ex in examples], margin)
    return [{"chosen": c, "rejected": r, "margin": m} for c, r, m in zip(chosen, rejected, margins, strict=True)]


def evaluate_pairs(
    model: PooledHeadModel, rows: Sequence[dict[str, Any]], pad_id: int, batch_size: int, device: torch.device | str
) -> dict[str, float]:
    """Pairwise accuracy, BT loss (without margin) and mean reward gap on encoded pairs."""
    if not rows:
        return {}
    scores = predict_encoded(
        model,
        [r["chosen"] for r in rows] + [r["rejected"] for r in rows],
        pad_id=pad_id,
        batch_size=batch_size,
        device=device,
    )[:, 0]
    chosen, rejected = scores.chunk(2)
    return {
        "accuracy": pairwise_accuracy(chosen, rejected).item(),
        "loss": bradley_terry_loss(chosen, rejected).item(),
        "margin": (chosen - rejected).mean().item(),
    }


def _pair_length(row: dict[str, Any]) -> int:
    return max(len(row["chosen"]["input_ids"]), len(row["rejected"]["input_ids"]))


def reward_job(config: RewardConfig) -> HeadJob:
    """The reward model as a :class:`HeadJob`: one scalar output, pairs in, Bradley–Terry loss."""
    return HeadJob(
        kind="reward",
        labels=["reward"],
        encode=partial(encode_pairs, margin=config.margin),
        length=_pair_length,
        collate=PairCollator,
        loss=partial(reward_step, center_coefficient=config.center_rewards_coefficient),
        evaluate=evaluate_pairs,
        packed=PackedBatches(packed_length, SharedPrefixCollator),
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
