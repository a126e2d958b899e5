"""JSON for the dashboard's slow figures, fetched by the page after it has rendered.

Nothing here loads a model: a figure that needs one is computed by a job and read from the database."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.auth.policy import Access, CurrentUser, allow
from app.dashboard import models
from app.deps import DbDep
from app.finetune.reward import agreement

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], dependencies=[allow(Access.researcher)])


@router.get("/rewards/{version_id}/agreement")
def reward_agreement(version_id: int, db: DbDep) -> dict[str, Any]:
    """A reward version's stored agreement with the human judgements made after it was trained, whether
    judgements have come since (``stale``) and the scoring job in flight (``job_id``)."""
    return agreement.figure(db, version_id=version_id)


@router.post("/rewards/{version_id}/agreement", status_code=202)
def score_reward_agreement(version_id: int, db: DbDep, user: CurrentUser) -> dict[str, Any]:
    """Ask for the figure to be scored again (a ``reward_agreement`` job; the one in flight if there is one)."""
    agreement.request(db, version_id=version_id, actor=user)
    db.commit()
    return agreement.figure(db, version_id=version_id)


@router.get("/leaderboard")
async def version_leaderboard(db: DbDep) -> dict[str, Any]:
    """Policy versions rated from the cross-version judgements (Bradley–Terry, Elo scale, 95% bootstrap
    intervals) and the observed win-rate matrix, rows and columns in the order of ``rows``; programs
    (``bench/closed_loop.py``) read the human verdict on a new version here."""
    board = await run_in_threadpool(models.version_leaderboard, db)
    if board is None:
        return {"battles": 0, "rows": [], "names": [], "win_rates": [], "games": []}
    return asdict(board)
