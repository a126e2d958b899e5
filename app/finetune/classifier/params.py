"""Parameters of the ``classifier`` job, validated when the job is queued."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from app.bounds import Float
from app.finetune.core.head_params import TrainParams
from app.finetune.core.params import config_field
from app.training.classifier.config import DEFAULT_HEADS, ClassifierConfig


class ClassifierParams(TrainParams):
    """A ``classifier`` job: binary heads on the per-response labels (each head's majority label)."""

    # The config's default as a list: the job's parameters are JSON, where a submitted value is a list too.
    heads: list[Literal["quality", "safety"]] = config_field(
        ClassifierConfig, "heads", list(DEFAULT_HEADS), min_length=1, max_length=2
    )
    threshold: Float = config_field(ClassifierConfig, "threshold")  # bounds: SETTING_BOUNDS

    @model_validator(mode="after")
    def _distinct(self) -> ClassifierParams:
        if len(set(self.heads)) != len(self.heads):
            raise ValueError("heads must be distinct")
        return self
