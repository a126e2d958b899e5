"""Parameters of the ``classifier`` job, validated when the job is queued."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.finetune.core.head_params import CLASSIFIER_HELP, TrainParams, _h
from app.training.classifier.config import DEFAULT_HEADS


class ClassifierParams(TrainParams):
    """A ``classifier`` job: binary heads on the per-response labels (each head's majority label)."""

    heads: list[Literal["quality", "safety"]] = Field(list(DEFAULT_HEADS), min_length=1, max_length=2,
                                                     description=_h("heads", CLASSIFIER_HELP))
    threshold: float = Field(0.5, gt=0, lt=1, description=_h("threshold", CLASSIFIER_HELP))

    @model_validator(mode="after")
    def _distinct(self) -> ClassifierParams:
        if len(set(self.heads)) != len(self.heads):
            raise ValueError("heads must be distinct")
        return self
