"""JSON API for the pair pool: how full it is, per policy version."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.auth.policy import Access, allow
from app.deps import DbDep, SettingsDep
from app.pool import service
from app.registry import service as registry

router = APIRouter(prefix="/api/v1/pool", tags=["pool"], dependencies=[allow(Access.researcher)])


class VersionCountOut(BaseModel):
    version_id: int | None
    name: str
    status: str
    same_version: int
    cross_version: int


class PoolOut(BaseModel):
    target: int
    promoted_policy_id: int | None
    promoted_pending: int  # pending pairs whose response A the promoted policy wrote
    pending_total: int
    generate_job_id: int | None  # queued or running
    versions: list[VersionCountOut]


@router.get("", response_model=PoolOut)
def pool_status(db: DbDep, settings: SettingsDep) -> PoolOut:
    """The pair pool: its target, the pending pairs (all, the promoted policy's, per version), the generation job."""
    promoted = registry.promoted_policy(db)
    counts = service.pool_counts(db)
    job = service.generation_job(db)
    return PoolOut(
        target=settings.pool_target,
        promoted_policy_id=promoted.id if promoted else None,
        promoted_pending=service.pending_count(db, version_id=promoted.id) if promoted else 0,
        pending_total=sum(c.total for c in counts),
        generate_job_id=job.id if job else None,
        versions=[VersionCountOut(**{k: getattr(c, k) for k in VersionCountOut.model_fields}) for c in counts],
    )
