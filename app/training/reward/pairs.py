"""What both reward targets (``pairwise`` and ``elo``) do with a judged pair: tokenise its two sides once,
measure it for length grouping, score both sides of a batch in one forward pass, and compute the
Bradley–Terry loss and the pairwise metrics of one head's scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from app.training.core.data import PreferenceExample
from app.training.core.encode import encode_responses
from app.training.core.heads import PooledHeadModel
from app.training.core.prefix import MODEL_INPUTS
from app.training.core.scoring import predict_encoded
from app.training.reward.loss import (
    bradley_terry_loss,
    centering_penalty,
    pairwise_accuracy,
    strength_margins,
    tie_gap,
)


def encode_pairs(
    tokenizer: Any, examples: Sequence[PreferenceExample], encoder: bool, max_length: int, *, margin: float = 0.0
) -> list[dict[str, Any]]:
    """Tokenise each pair's two sides once, up front (two batched tokenizer calls for the whole set); a tied
    pair's row has ``tie`` 1 and no margin."""
    prompts = [ex.prompt for ex in examples]
    chosen = encode_responses(
        tokenizer, prompts, [ex.chosen for ex in examples], encoder=encoder, max_length=max_length
    )
    rejected = encode_responses(
        tokenizer, prompts, [ex.rejected for ex in examples], encoder=encoder, max_length=max_length
    )
    margins = strength_margins([ex.strength for ex in examples], margin)
    return [
        {"chosen": c, "rejected": r, "margin": 0.0 if ex.tie else m, "tie": float(ex.tie)}
        for c, r, m, ex in zip(chosen, rejected, margins, examples, strict=True)
    ]


def decided_only(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of pairs judged for one side, for a reward that does not learn from ties (none: ValueError)."""
    return with_ties_balanced([row for row in rows if not row.get("tie")])


def with_ties_balanced(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with each decided pair repeated ⌈ties / decided⌉ times, so decided pairs make at least half.

    When most verdicts are ties (a trait the policy rarely shows), the few decided pairs are all that says
    which way the reward goes; unrepeated, an epoch of hundreds of ties would show each of them once and
    the reward would learn mostly that answers are alike. Repeated, every decided pair is seen about as
    often as when ties are left out, and the ties only pull together what the annotators found equal."""
    decided = [row for row in rows if not row.get("tie")]
    ties = [row for row in rows if row.get("tie")]
    if not decided:
        raise ValueError("no decided pairs: a reward model needs judgements that prefer one side")
    repeats = max(1, math.ceil(len(ties) / len(decided)))
    return [row for row in decided for _ in range(repeats)] + ties


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
    tie = batch.get("tie")
    loss = bradley_terry_loss(chosen, rejected, batch["margin"], tie)
    if center_coefficient > 0:
        loss = loss + center_coefficient * centering_penalty(chosen, rejected)
    with torch.no_grad():
        decided = torch.ones_like(chosen) if tie is None else 1.0 - tie
        metrics = {
            "loss": loss,
            "accuracy": pairwise_accuracy(chosen, rejected, tie),
            "margin": ((chosen - rejected) * decided).sum() / decided.sum().clamp(min=1.0),  # decided pairs'
        }
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


def pair_metrics(chosen: torch.Tensor, rejected: torch.Tensor, tie: torch.Tensor | None = None) -> dict[str, float]:
    """Pairwise accuracy, BT loss (without margin) and mean reward gap of one head on held-out decided pairs;
    with tied pairs among them (``tie`` 1), also ``tie_gap``, the mean |r_a − r_b| over those."""
    tie = torch.zeros_like(chosen) if tie is None else tie
    decided, metrics = tie == 0, {}
    if bool(decided.any()):
        chosen_d, rejected_d = chosen[decided], rejected[decided]
        metrics = {
            "accuracy": pairwise_accuracy(chosen_d, rejected_d).item(),
            "loss": bradley_terry_loss(chosen_d, rejected_d).item(),
            "margin": (chosen_d - rejected_d).mean().item(),
        }
    if bool(tie.any()):
        metrics["tie_gap"] = tie_gap(chosen, rejected, tie).item()
    return metrics
