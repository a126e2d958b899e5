"""One batch of DPO: the policy's sequence log-probs against the stored reference ones, and the loss.

Shared by the offline trainer (as the shared loop's ``compute_loss``) and the online one (per round), and by
validation, so the curves of all three mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from app.training.dpo.config import LossType
from app.training.dpo.data import PairCollate, PairRow, sequence_logprobs
from app.training.dpo.losses import dpo_terms


def dpo_step(
    model: nn.Module, batch: dict[str, torch.Tensor], *, beta: float, loss_type: LossType
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(loss, detached metrics) of a collated batch whose rows carry their reference log-probs."""
    policy_chosen, policy_rejected = sequence_logprobs(model, batch).chunk(2)  # [B], [B]
    ref_chosen, ref_rejected = batch["ref"].chunk(2)
    terms = dpo_terms(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta, loss_type=loss_type, margin=batch["margin"]
    )
    return terms.loss, terms.metrics()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    rows: Sequence[PairRow],
    collate: PairCollate,
    batch_size: int,
    device: torch.device | str,
    *,
    beta: float,
    loss_type: LossType,
) -> dict[str, float]:
    """Pair-weighted means of the batch metrics over ``rows`` ({} without rows), so batching does not change them."""
    if not rows:
        return {}
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        _, metrics = dpo_step(model, batch, beta=beta, loss_type=loss_type)
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + float(value) * len(chunk)
    model.train(was_training)
    return {name: total / len(rows) for name, total in totals.items()}
