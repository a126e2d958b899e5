"""Hyper-parameters of the classifier job: binary heads (quality, safety) on one shared backbone."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.training.reward_config import TrainConfig

DEFAULT_HEADS = ("quality", "safety")


@dataclass
class ClassifierConfig(TrainConfig):
    """The classifier job: one sigmoid output per head, binary cross-entropy on labelled responses."""

    heads: tuple[str, ...] = field(default=DEFAULT_HEADS, metadata={
        "help": "Names of the binary heads; each LabelledResponse carries a label (or None) per name."})
    threshold: float = field(default=0.5, metadata={
        "help": "Probability at or above which a head says 1, for the reported accuracy."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate, decayed linearly to 0."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.heads = tuple(self.heads)
        if not self.heads or len(set(self.heads)) != len(self.heads):
            raise ValueError("heads must be non-empty and distinct")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
