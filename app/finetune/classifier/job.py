"""The ``classifier`` job kind: quality/safety heads on the response labels, registered as a ``classifier`` version.

The handler imports the trainer (and with it torch) only when it runs, in the job process; the web
app imports this module to validate and queue jobs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.export.snapshot import ExportSnapshot
from app.finetune.classifier.params import ClassifierParams
from app.finetune.core.dataset import DataFilters, labelled_responses
from app.finetune.core.head_job import run_training
from app.jobs.context import JobContext
from app.jobs.registry import register
from app.registry.models import ModelKind

KIND = "classifier"


def _labelled(db: Session, params: ClassifierParams, filters: DataFilters, export: ExportSnapshot | None) -> list[Any]:
    """The examples: the labelled responses, those with a label for at least one of the job's heads."""
    heads = tuple(params.heads)
    examples = labelled_responses(db, filters, heads=heads)
    return [ex for ex in examples if any(ex.labels.get(h) is not None for h in heads)]


@register(KIND, ClassifierParams)
def run_classifier(ctx: JobContext[ClassifierParams]) -> dict[str, Any]:
    """Train and register the quality/safety classifier on the response labels."""
    from app.training.classifier.config import ClassifierConfig
    from app.training.classifier.trainer import train_classifier

    return run_training(ctx, ModelKind.classifier, _labelled, train_classifier, ClassifierConfig)
