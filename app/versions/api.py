"""JSON API for the model registry: researchers list, inspect, promote and archive versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.auth.policy import Access, allow
from app.deps import DbDep, SettingsDep
from app.registry import service
from app.registry.models import ModelKind, ModelStatus
from app.versions import promotion

router = APIRouter(prefix="/api/v1/models", tags=["models"], dependencies=[allow(Access.researcher)])


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: ModelKind
    status: ModelStatus
    parent_id: int | None
    base_model: str
    path: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    created_by_job_id: int | None
    created_at: datetime
    promoted_at: datetime | None


class PromotionOut(BaseModel):
    promoted: ModelVersionOut
    previous_id: int | None
    retired_pairs: int  # unjudged pending pairs of the previous policy retired
    generate_job_id: int | None  # the job refilling the pool, when one was queued


@router.get("", response_model=list[ModelVersionOut])
def list_versions(db: DbDep, kind: ModelKind | None = None, include_archived: bool = True) -> list[Any]:
    """Registered model versions (policies, reward models, classifiers), optionally of one kind."""
    return service.list_versions(db, kind=kind, include_archived=include_archived)


@router.get("/{version_id}", response_model=ModelVersionOut)
def get_version(db: DbDep, version_id: int) -> Any:
    """One model version."""
    return service.get_version(db, version_id)


@router.post("/{version_id}/promote", response_model=PromotionOut)
def promote(db: DbDep, settings: SettingsDep, version_id: int) -> PromotionOut:
    """Make this policy the promoted one; the pool retires the old policy's unjudged pairs and refills."""
    result = promotion.promote(db, settings, version_id=version_id)
    return PromotionOut(
        promoted=ModelVersionOut.model_validate(result.promoted),
        previous_id=result.previous.id if result.previous else None,
        retired_pairs=result.retired,
        generate_job_id=result.job.id if result.job else None,
    )


@router.post("/{version_id}/archive", response_model=ModelVersionOut)
def archive(db: DbDep, version_id: int) -> Any:
    """Archive a version (never the promoted policy); its folder stays where it is."""
    return service.archive(db, version_id=version_id)
