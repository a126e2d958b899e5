"""JSON API for the SELF-INSTRUCT review: researchers read, admins decide.

A run itself is started like any job: ``POST /api/v1/jobs`` with ``{"kind": "self_instruct", ...}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.auth.policy import Access, allow
from app.bounds import Id
from app.deps import DbDep
from app.instruct import review
from app.prompts.models import PromptSetStatus

PREFIX = "/api/v1/self-instruct"
read_router = APIRouter(prefix=PREFIX, tags=["self-instruct"], dependencies=[allow(Access.researcher)])
admin_router = APIRouter(prefix=PREFIX, tags=["self-instruct"], dependencies=[allow(Access.admin)])


class ReviewSetOut(BaseModel):
    id: int
    name: str
    status: PromptSetStatus
    created_at: datetime
    pending: int
    approved: int
    rejected: int


class ReviewPromptOut(BaseModel):
    id: int
    text: str
    state: review.ReviewState


class ReviewDetailOut(ReviewSetOut):
    prompts: list[ReviewPromptOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    prompt_ids: Annotated[
        list[Id] | None,
        Field(min_length=1, max_length=review.MAX_DECISION_IDS, description="null: every pending prompt of the set"),
    ] = None


class DecisionOut(BaseModel):
    decision: review.Decision
    changed: int = Field(description="prompts whose state this decision changed")
    set_status: PromptSetStatus


def _set_out(summary: review.ReviewSummary) -> ReviewSetOut:
    s = summary.prompt_set
    counts = {"pending": summary.pending, "approved": summary.approved, "rejected": summary.rejected}
    return ReviewSetOut(id=s.id, name=s.name, status=s.status, created_at=s.created_at, **counts)


@read_router.get("/sets", response_model=list[ReviewSetOut])
def review_sets(db: DbDep) -> object:
    """Sets holding SELF-INSTRUCT prompts, newest first, with their review counts."""
    return [_set_out(s) for s in review.list_review_sets(db)]


@read_router.get("/sets/{set_id}", response_model=ReviewDetailOut)
def review_set(set_id: int, db: DbDep) -> object:
    """A SELF-INSTRUCT set's review: its counts and each generated prompt with its state."""
    items = [
        ReviewPromptOut(id=p.id, text=p.messages[-1]["content"], state=state)
        for p, state in review.review_prompts(db, set_id)
    ]
    return ReviewDetailOut(**_set_out(review.review_summary(db, set_id)).model_dump(), prompts=items)


@admin_router.post("/sets/{set_id}/decisions", response_model=DecisionOut)
def decide(set_id: int, body: DecisionIn, db: DbDep) -> object:
    """Approve (→ prompts in use, set active) or reject (→ retired) the given prompts, or all pending ones."""
    report = review.decide(db, set_id=set_id, decision=body.decision, prompt_ids=body.prompt_ids)
    return DecisionOut(decision=report.decision, changed=report.changed, set_status=report.set_status)
