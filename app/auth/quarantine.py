"""Which annotators' work counts: everyone's but the quarantined (``User.quarantined_at``), unless asked.

Quarantine keeps an annotator's rows (nothing is deleted, and lifting it brings them back) while every
consumer of annotations leaves them out by default: exports, the reward/classifier/DPO training data, and
the agreement figures. One predicate serves them all, so "left out" means the same rows everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select

from app.auth.models import User

QUARANTINED = select(User.id).where(User.quarantined_at.is_not(None))


def counted(annotator_id: Any) -> ColumnElement[bool]:
    """A filter on a row's annotator column: true unless the annotator is quarantined (rows without an
    annotator, such as imported demonstrations, always count)."""
    return annotator_id.is_(None) | annotator_id.not_in(QUARANTINED)
