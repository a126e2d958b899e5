"""Train the response classifier: binary heads (quality, safety) on a shared backbone.

Each labelled response is one example; a head learns from the responses labelled for it (a missing
label is masked out of the loss) with binary cross-entropy on its logit. The run — split by prompt,
accelerate loop, resumable checkpoints, atomic save with a card — is the reward model's
(:mod:`app.training.core.pipeline`). Validation reports accuracy, AUROC and loss per head.

    result = train_classifier(labelled, ClassifierConfig(epochs=3), "/models/classifier-1")
    result.metrics  # {"val_quality_accuracy": 0.9, "val_quality_auroc": 0.95, …, "val_safety_auroc": …}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Unpack

import torch
import torch.nn.functional as F
from torch import nn

from app.training.classifier.config import ClassifierConfig
from app.training.classifier.metrics import auroc, binary_accuracy
from app.training.core.batches import LabelledCollator
from app.training.core.data import LabelledResponse
from app.training.core.encode import encode_responses
from app.training.core.heads import PooledHeadModel
from app.training.core.pipeline import HeadJob, RunOptions, train_head_model
from app.training.core.result import TrainResult
from app.training.core.scoring import predict_encoded


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the labels that exist. logits, labels, mask: [B, H] -> scalar."""
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")  # [B, H]
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


def classifier_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Masked BCE over all heads of one batch, with the masked accuracy at probability 0.5."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))  # [B, H]
    mask = batch["label_mask"]
    loss = masked_bce(logits, batch["labels"], mask)
    with torch.no_grad():
        correct = ((logits >= 0) == (batch["labels"] >= 0.5)).float()
        accuracy = (correct * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, {"loss": loss, "accuracy": accuracy}


def encode_labelled(
    tokenizer: Any, examples: Sequence[LabelledResponse], encoder: bool, max_length: int, *, heads: Sequence[str]
) -> list[dict[str, Any]]:
    """Token ids plus the label vector and its mask (1 where the head has a label) per response."""
    encoded = encode_responses(
        tokenizer,
        [ex.prompt for ex in examples],
        [ex.response for ex in examples],
        encoder=encoder,
        max_length=max_length,
    )
    rows = []
    for ex, enc in zip(examples, encoded, strict=True):
        values = [ex.labels.get(head) for head in heads]
        rows.append(
            {
                "encoded": enc,
                "labels": [float(v) if v is not None else 0.0 for v in values],
                "label_mask": [0.0 if v is None else 1.0 for v in values],
            }
        )
    return rows


def evaluate_labelled(
    model: PooledHeadModel,
    rows: Sequence[dict[str, Any]],
    pad_id: int,
    batch_size: int,
    device: torch.device | str,
    *,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Per head: accuracy, AUROC, BCE loss and how many validation labels it had."""
    if not rows:
        return {}
    logits = predict_encoded(
        model, [r["encoded"] for r in rows], pad_id=pad_id, batch_size=batch_size, device=device
    )  # [N, H]
    labels = torch.tensor([r["labels"] for r in rows])
    mask = torch.tensor([r["label_mask"] for r in rows]).bool()
    metrics: dict[str, float] = {}
    for h, head in enumerate(model.labels):
        keep = mask[:, h]
        if not keep.any():
            continue
        head_logits, head_labels = logits[keep, h], labels[keep, h]
        hard = (head_labels >= 0.5).tolist()
        metrics[f"{head}_accuracy"] = binary_accuracy(torch.sigmoid(head_logits).tolist(), hard, threshold)
        metrics[f"{head}_auroc"] = auroc(head_logits.tolist(), hard)
        metrics[f"{head}_loss"] = F.binary_cross_entropy_with_logits(head_logits, head_labels).item()
        metrics[f"{head}_count"] = float(keep.sum().item())
    return {name: value for name, value in metrics.items() if not math.isnan(value)}


def classifier_job(config: ClassifierConfig) -> HeadJob:
    """The classifier as a :class:`HeadJob`: one logit per head, responses in, masked BCE."""
    return HeadJob(
        kind="classifier",
        labels=list(config.heads),
        encode=partial(encode_labelled, heads=config.heads),
        length=lambda row: len(row["encoded"]["input_ids"]),
        collate=LabelledCollator,
        loss=classifier_step,
        evaluate=partial(evaluate_labelled, threshold=config.threshold),
    )


def train_classifier(
    examples: Sequence[LabelledResponse],
    config: ClassifierConfig,
    output_dir: Path | str,
    **options: Unpack[RunOptions],
) -> TrainResult[PooledHeadModel]:
    """Train, validate and save the classifier to ``output_dir``; same contract as ``train_reward_model``.

    Responses labelled for none of ``config.heads`` are left out (they teach no head anything)."""
    usable = [ex for ex in examples if any(ex.labels.get(head) is not None for head in config.heads)]
    if not usable:
        raise ValueError(f"no response carries a label for any of {list(config.heads)}")
    return train_head_model(classifier_job(config), usable, config, output_dir, **options)
