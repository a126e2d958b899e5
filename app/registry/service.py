"""The registry of model versions: register (idempotently per job), promote, archive, list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.errors import Conflict, Invalid
from app.lookup import get_or_404
from app.registry.models import ModelKind, ModelStatus, ModelVersion


def register(
    db: Session,
    *,
    name: str,
    kind: ModelKind,
    path: str,
    base_model: str = "",
    parent_id: int | None = None,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    job_id: int | None = None,
    status: ModelStatus = ModelStatus.ready,
) -> ModelVersion:
    """Add a version (flushed, not committed: the caller's transaction decides).

    Keyed by ``job_id``: when the job already registered its version (a re-run after a crash),
    that version is returned instead of a second one."""
    if job_id is not None:
        existing = db.scalar(select(ModelVersion).where(ModelVersion.created_by_job_id == job_id))
        if existing is not None:
            return existing
    if db.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
        raise Conflict(f"a model version named {name!r} exists already", field="name")
    version = ModelVersion(
        name=name,
        kind=kind,
        path=path,
        base_model=base_model,
        parent_id=parent_id,
        metrics=metrics or {},
        config=config or {},
        created_by_job_id=job_id,
        status=status,
    )
    db.add(version)
    db.flush()
    return version


def get_version(db: Session, version_id: int, *, kind: ModelKind | None = None) -> ModelVersion:
    return get_or_404(
        db,
        ModelVersion,
        version_id,
        f"{kind.value if kind else 'model'} version",
        where=lambda v: kind is None or v.kind is kind,
    )


def list_versions(db: Session, *, kind: ModelKind | None = None, include_archived: bool = True) -> list[ModelVersion]:
    query = select(ModelVersion).order_by(ModelVersion.id.desc())
    if kind is not None:
        query = query.where(ModelVersion.kind == kind)
    if not include_archived:
        query = query.where(ModelVersion.status != ModelStatus.archived)
    return list(db.scalars(query))


def promoted_policy(db: Session) -> ModelVersion | None:
    return db.scalar(
        select(ModelVersion).where(ModelVersion.kind == ModelKind.policy, ModelVersion.status == ModelStatus.promoted)
    )


def latest_ready(db: Session, kind: ModelKind) -> ModelVersion | None:
    usable = (ModelStatus.ready, ModelStatus.promoted)
    return db.scalar(
        select(ModelVersion)
        .where(ModelVersion.kind == kind, ModelVersion.status.in_(usable))
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )


def promote(db: Session, *, version_id: int) -> tuple[ModelVersion | None, ModelVersion]:
    """Make ``version_id`` the one promoted policy; returns (previous, new). Flushes, never commits: the
    pool's side of a promotion commits with it (``app.versions.promotion``).

    The partial unique index guarantees one promoted policy even if two researchers click at once."""
    version = get_version(db, version_id)
    if version.kind is not ModelKind.policy:
        raise Invalid(
            "version_id", f"only policy versions are promoted; {version.name} is a {version.kind.value} model"
        )
    if version.status not in (ModelStatus.ready, ModelStatus.promoted):
        raise Conflict(f"{version.name} is {version.status.value}; only a ready version can be promoted")
    previous = promoted_policy(db)
    if previous is not None and previous.id == version.id:
        return previous, version
    if previous is not None:
        db.execute(update(ModelVersion).where(ModelVersion.id == previous.id).values(status=ModelStatus.ready))
    version.status = ModelStatus.promoted
    version.promoted_at = utcnow()
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise Conflict("another policy was promoted at the same moment; reload and try again") from None
    return previous, version


def archive(db: Session, *, version_id: int) -> ModelVersion:
    version = get_version(db, version_id)
    if version.status is ModelStatus.promoted:
        raise Conflict(f"{version.name} is the promoted policy; promote another version first")
    version.status = ModelStatus.archived
    db.commit()
    return version
