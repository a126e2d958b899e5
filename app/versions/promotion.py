"""Promotion: one service, one transaction, whoever asks (the API, the model page, the dashboard, bootstrap).

Swapping the promoted policy and the pool's reaction to it (the old policy's unjudged pairs retired, a
refill from the new one queued) commit together, so no reader ever sees a new policy beside a pool that
still serves the old one's pairs, and a failure leaves both as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs.models import Job
from app.pool import service as pool
from app.registry import service as registry
from app.registry.models import ModelVersion


@dataclass(frozen=True)
class Promotion:
    """What a promotion did: the policy it replaced (None on a first start), the new one, how many of the
    old policy's unjudged pairs it retired, and the generate job refilling the pool (None when one was
    already on its way or there is nothing to prompt)."""

    previous: ModelVersion | None
    promoted: ModelVersion
    retired: int
    job: Job | None

    @property
    def replaced(self) -> ModelVersion | None:
        """The previous policy, unless the promoted version already was the promoted one."""
        return self.previous if self.previous is not None and self.previous.id != self.promoted.id else None


def promote(db: Session, settings: Settings, *, version_id: int) -> Promotion:
    """Make ``version_id`` the promoted policy and let the pool follow, in one commit."""
    previous, promoted = registry.promote(db, version_id=version_id)
    retired = 0
    if previous is not None and previous.id != promoted.id and settings.pool_retire_on_promote:
        retired = pool.retire_unjudged(db, version_id=previous.id)
    job = pool.ensure_generating(db, settings, reason="promotion")
    db.commit()
    if previous is not None:
        db.refresh(previous)
    return Promotion(previous=previous, promoted=promoted, retired=retired, job=job)
