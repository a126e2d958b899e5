"""Hyper-parameters of the classifier job: binary heads (quality, safety) on one shared backbone."""

from __future__ import annotations

from dataclasses import dataclass

from app.training.core.config import TrainConfig, help_field

DEFAULT_HEADS = ("quality", "safety")


@dataclass
class ClassifierConfig(TrainConfig):
    """The classifier job: one sigmoid output per head, binary cross-entropy on labelled responses."""

    heads: tuple[str, ...] = help_field(
        DEFAULT_HEADS, "Names of the binary heads; each LabelledResponse carries a label (or None) per name."
    )
    threshold: float = help_field(0.5, "Probability at or above which a head says 1, for the reported accuracy.")

    def __post_init__(self) -> None:
        self.heads = tuple(self.heads)  # stored parameters come back from JSON as a list; equal configs compare equal
        super().__post_init__()

    def validate(self) -> None:
        """The shared checks, then the heads and threshold."""
        super().validate()
        if not self.heads or len(set(self.heads)) != len(self.heads):
            raise ValueError("heads must be non-empty and distinct")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
