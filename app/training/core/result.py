"""What a training run hands back: one shape for the reward, classifier, SFT, DPO, PPO and RLOO trainers.

Every trainer ends the same way: a folder written atomically with a card beside the weights, the
numbers the card records, how far the run got and where it resumed, and — when it trained in this
process — the model in memory. A job handler registers a version from exactly these, whichever
trainer ran, so they are declared once here; a trainer with more to say subclasses it (the trainers
that sample from their policy add every iteration's metrics). Kept free of torch, so code that only
reads results need not load it.

    result = train_reward_model(pairs, RewardConfig(), "var/models/reward/rm-3")
    result.metrics["val_accuracy"], result.steps, result.card["fingerprint"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

if TYPE_CHECKING:
    from torch import nn

ModelT = TypeVar("ModelT", bound="nn.Module")


@dataclass
class TrainResult(Generic[ModelT]):
    """Where the trained model is and how it did; ``card`` is what was saved beside it."""

    # The card's names for ``steps`` and ``resumed_from`` are f"{unit}s" and f"resumed_from_{unit}".
    CARD_UNIT: ClassVar[str] = "step"

    output_dir: Path
    metrics: dict[str, float]  # as on the card: the validation results (PPO: the last update's metrics)
    steps: int  # optimizer steps taken in all (PPO: updates), resumed ones included
    resumed_from: int  # the step the run resumed from; 0 for a fresh run
    card: dict[str, Any]
    model: ModelT | None = None  # in memory (PPO: main process only); None when an earlier run's card was returned

    @classmethod
    def from_card(cls, output_dir: Path, card: dict[str, Any]) -> Self:
        """The result of a run that already finished into ``output_dir``: its card, no model."""
        return cls(output_dir, card["metrics"], card[f"{cls.CARD_UNIT}s"], card[f"resumed_from_{cls.CARD_UNIT}"], card)
