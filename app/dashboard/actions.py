"""What the dashboard's buttons do to the model registry: promote and archive.

This is the single place the dashboard changes a version's status, so behaviour that must follow
a promotion (retiring the old policy's unjudged pool pairs, queueing a refill) is added here
once and every button, page or API that promotes gets it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.models import User
from app.config import Settings
from app.pool import service as pool
from app.registry import service as registry
from app.registry.models import ModelVersion


@dataclass(frozen=True)
class Promoted:
    previous: ModelVersion | None
    version: ModelVersion


def promote(db: Session, settings: Settings, *, version_id: int, actor: User) -> Promoted:
    """Make ``version_id`` the promoted policy (commits); the registry refuses non-policy or archived versions.

    The pool follows, as after a promotion through the API: the old policy's unjudged pairs retire and
    a refill from the new one is queued, so cross-version pairs (new vs old) reach the annotators."""
    done = pool.promote_policy(db, settings, version_id=version_id)
    previous, version = done.previous, done.promoted
    return Promoted(previous=previous if previous is not None and previous.id != version.id else None, version=version)


def archive(db: Session, *, version_id: int, actor: User) -> ModelVersion:
    """Archive a version (commits); the promoted policy cannot be archived."""
    return registry.archive(db, version_id=version_id)
