"""What both reward targets (``pairwise`` and ``elo``) do with a judged pair: tokenise its two sides once,
measure it for length grouping, score both sides of a batch in one forward pass, and compute the
Bradley–Terry loss and the pairwise metrics of one head's scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from app.training.core.data import PreferenceExample
from app.training.core.encode import encode_responses
from app.training.core.heads import PooledHeadModel
from app.training.core.prefix import MODEL_INPUTS
from app.training.core.scoring import predict_encoded
from app.training.reward.loss import bradley_terry_loss, centering_penalty, pairwise_accuracy, strength_margins


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


def pair_length(row: dict[str, Any]) -> int:
    """The padded length of a pair row: its longer side."""
    return max(len(row["chosen"]["input_ids"]), len(row["rejected"]["input_ids"]))


def batch_scores(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every head output of a collated pair batch, [2B, K]: the B chosen sides, then the B rejected."""
    return model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS})


def bradley_terry_step(
    rewards: torch.Tensor, batch: dict[str, torch.Tensor], center_coefficient: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley–Terry loss (with the batch's margins and the centring penalty) of one head's rewards [2B]."""
    chosen, rejected = rewards.chunk(2)  # [B], [B]
    loss = bradley_terry_loss(chosen, rejected, batch["margin"])
    if center_coefficient > 0:
        loss = loss + center_coefficient * centering_penalty(chosen, rejected)
    with torch.no_grad():
        metrics = {"loss": loss, "accuracy": pairwise_accuracy(chosen, rejected), "margin": (chosen - rejected).mean()}
    return loss, metrics


def score_pairs(
    model: PooledHeadModel, rows: Sequence[dict[str, Any]], pad_id: int, batch_size: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every head output of each pair's chosen and rejected side: ([N, K], [N, K]), without autograd."""
    scores = predict_encoded(
        model,
        [r["chosen"] for r in rows] + [r["rejected"] for r in rows],
        pad_id=pad_id,
        batch_size=batch_size,
        device=device,
    )
    chosen, rejected = scores.chunk(2)
    return chosen, rejected


def pair_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """Pairwise accuracy, BT loss (without margin) and mean reward gap of one head on held-out pairs."""
    return {
        "accuracy": pairwise_accuracy(chosen, rejected).item(),
        "loss": bradley_terry_loss(chosen, rejected).item(),
        "margin": (chosen - rejected).mean().item(),
    }
