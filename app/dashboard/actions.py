"""What the dashboard's buttons do to the model registry: promote and archive.

Promotion itself is ``app.versions.promotion``, the one service every button, page and API calls, so
what must follow a promotion (retiring the old policy's unjudged pool pairs, queueing a refill) happens
in its transaction whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import Settings
from app.registry import service as registry
from app.registry.models import ModelVersion
from app.versions import promotion


@dataclass(frozen=True)
class Promoted:
    previous: ModelVersion | None
    version: ModelVersion


def promote(db: Session, settings: Settings, *, version_id: int, actor: User) -> Promoted:
    """Make ``version_id`` the promoted policy (commits); the registry refuses non-policy or archived versions.

    The pool follows, as after a promotion through the API: the old policy's unjudged pairs retire and
    a refill from the new one is queued, so cross-version pairs (new vs old) reach the annotators."""
    done = promotion.promote(db, settings, version_id=version_id)
    return Promoted(previous=done.replaced, version=done.promoted)


def archive(db: Session, *, version_id: int, actor: User) -> ModelVersion:
    """Archive a version (commits); the promoted policy cannot be archived."""
    return registry.archive(db, version_id=version_id)
