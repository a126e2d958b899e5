"""JSON for the dashboard's slow figures, fetched by the page after it has rendered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.auth.policy import Access, allow
from app.dashboard import models
from app.deps import DbDep

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], dependencies=[allow(Access.researcher)])


@router.get("/rewards/{version_id}/agreement")
async def reward_agreement(version_id: int, db: DbDep) -> dict[str, Any]:
    """A reward version's agreement with the human judgements made after it was trained (runs the model)."""
    return await run_in_threadpool(models.human_agreement, db, version_id=version_id)
