"""The reward job's ``target: elo``: the reward head regresses on Elo, a Bradley–Terry head learns beside it.

The model has two outputs. Output 0, ``reward`` (the one every scorer reads), is fitted by MSE to each
side's Elo target (:mod:`~app.training.reward.elo_target`: the response's Elo over the training
judgements, normalised per prompt to [0, 1]) less ½, so that a prompt's average response scores 0: the
head needs no bias (a reward head may have none) and its scores centre where the BT head's do. Output 1,
``bradley_terry``, is fitted by the usual Bradley–Terry loss (margin and centring included) on the same
rows in the same steps. One backbone serves both, so neither head gets a better encoder than the other,
and the validation pairs, whose judgements no training target read, rank both: ``val_accuracy`` (the Elo
head, the registered reward) against ``val_bt_accuracy``.

Each split's targets come from its own examples: the training rows' from the training judgements only;
the validation rows' from the held-out judgements alone, used only for ``val_mse``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.training.core.batches import PairCollator
from app.training.core.data import PreferenceExample
from app.training.core.heads import PooledHeadModel
from app.training.core.pipeline import HeadJob, PackedBatches
from app.training.core.prefix import SharedPrefixCollator, packed_length
from app.training.reward import pairs
from app.training.reward.config import RewardConfig
from app.training.reward.elo_target import elo_targets
from app.training.reward.loss import pairwise_accuracy

LABELS = ["reward", "bradley_terry"]  # output 0 is the reward a scorer reads
CENTRE = 0.5  # subtracted from every target: a prompt's average response scores 0, as under Bradley–Terry
Collate = Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]]


def encode_elo_pairs(
    tokenizer: Any, examples: Sequence[PreferenceExample], encoder: bool, max_length: int, *, margin: float = 0.0
) -> list[dict[str, Any]]:
    """The pairs encoded as for ``pairwise``, plus each side's Elo target, computed from ``examples`` alone
    (the trainer encodes its training and validation splits apart). Ties are left out: Elo here is fitted
    on A/B games."""
    examples = [example for example in examples if not example.tie]
    rows = pairs.encode_pairs(tokenizer, examples, encoder, max_length, margin=margin)
    for row, (chosen, rejected) in zip(rows, elo_targets(examples), strict=True):
        row["targets"] = (chosen - CENTRE, rejected - CENTRE)
    return rows


class TargetCollator:
    """A pair collator's batch plus the targets [2B] in the order of its scores: chosen sides, then rejected."""

    def __init__(self, collate: Collate) -> None:
        self.collate = collate

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate(items)
        targets = [item["targets"][0] for item in items] + [item["targets"][1] for item in items]
        batch["targets"] = torch.tensor(targets, dtype=torch.float32)
        return batch


def with_targets(factory: Callable[..., Collate]) -> Callable[..., Collate]:
    """A collator factory (pad id, options) whose collators also carry the targets."""
    return lambda *args, **kwargs: TargetCollator(factory(*args, **kwargs))


def elo_step(
    model: nn.Module, batch: dict[str, torch.Tensor], *, center_coefficient: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MSE of output 0 against the Elo targets plus the Bradley–Terry loss of output 1, one forward pass."""
    scores = pairs.batch_scores(model, batch)  # [2B, 2]
    mse = F.mse_loss(scores[:, 0], batch["targets"])
    bt_loss, bt_metrics = pairs.bradley_terry_step(scores[:, 1], batch, center_coefficient)
    loss = mse + bt_loss
    with torch.no_grad():
        chosen, rejected = scores[:, 0].chunk(2)
        metrics = {
            "loss": loss,
            "mse": mse,
            "accuracy": pairwise_accuracy(chosen, rejected),
            "margin": (chosen - rejected).mean(),
            **{f"bt_{name}": value for name, value in bt_metrics.items()},
        }
    return loss, metrics


def evaluate_elo_pairs(
    model: PooledHeadModel, rows: Sequence[dict[str, Any]], pad_id: int, batch_size: int, device: torch.device | str
) -> dict[str, float]:
    """Both heads on the same held-out pairs: the Elo head's accuracy, gap and MSE against the held-out
    Elo targets; the Bradley–Terry head's accuracy, loss and gap as ``bt_*``."""
    if not rows:
        return {}
    chosen, rejected = pairs.score_pairs(model, rows, pad_id, batch_size, device)  # [N, 2] each
    targets = torch.tensor([row["targets"] for row in rows], dtype=torch.float32)  # [N, 2]: chosen, rejected
    elo = pairs.pair_metrics(chosen[:, 0], rejected[:, 0])
    mse = F.mse_loss(torch.stack([chosen[:, 0], rejected[:, 0]], dim=1), targets).item()
    bt = pairs.pair_metrics(chosen[:, 1], rejected[:, 1])
    return {
        "accuracy": elo["accuracy"],
        "margin": elo["margin"],
        "mse": mse,
        **{f"bt_{name}": value for name, value in bt.items()},
    }


def elo_job(config: RewardConfig) -> HeadJob:
    """The reward model with ``target: elo`` as a :class:`HeadJob`."""
    return HeadJob(
        kind="reward",
        labels=LABELS,
        encode=partial(encode_elo_pairs, margin=config.margin),
        length=pairs.pair_length,
        collate=with_targets(PairCollator),
        loss=partial(elo_step, center_coefficient=config.center_rewards_coefficient),
        evaluate=evaluate_elo_pairs,
        packed=PackedBatches(packed_length, with_targets(SharedPrefixCollator)),
    )
