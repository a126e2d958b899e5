"""The annotation flow as JSON, for programs and load tests: next pair, submit, skip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field

from app.annotation import assignment as assignments
from app.annotation import edits, gold, submission
from app.annotation.schemas import JudgementChange, JudgementIn, SkipIn
from app.auth.policy import Access, CurrentUser, OneHopRoute, allow
from app.bounds import MAX_ID, Id
from app.deps import DbDep, SettingsDep
from app.prompts.validation import MAX_CONTENT

# One thread-pool trip per request for the routes that return their Response (next, submit, skip): OneHopRoute.
router = APIRouter(
    prefix="/api/v1/annotation",
    tags=["annotation"],
    dependencies=[allow(Access.annotator)],
    route_class=OneHopRoute,
)
gold_router = APIRouter(prefix="/api/v1/annotation/gold-pairs", tags=["annotation"], dependencies=[allow(Access.admin)])
Answer = Annotated[str, Field(min_length=1, max_length=MAX_CONTENT)]


class GoldPairIn(BaseModel):
    prompt_id: Id
    better: Answer = Field(description="The answer every careful annotator should prefer.")
    worse: Answer


class GoldPairOut(BaseModel):
    pair_id: int


class ProgressOut(BaseModel):
    judged_today: int
    judged_total: int
    remaining: int


class PairOut(BaseModel):
    assignment_id: int
    pair_id: int
    messages: list[dict[str, str]]
    responses: dict[str, str]  # {"A": text shown on the left, "B": text shown on the right}
    cut_off: dict[str, bool] = Field(
        description="Per side, whether the answer stopped at the length budget (it may end mid-sentence)."
    )
    lease_expires_at: str


class StoredOut(BaseModel):
    judgement_id: int
    created: bool


def _json(model: BaseModel, status_code: int = status.HTTP_200_OK) -> Response:
    """The response model serialised once, by pydantic, on the annotation hot path. A plain ``def`` route that
    returns a model has FastAPI validate it again in the thread pool (a second hop there and back, as dear as
    the route's own statements) before serialising it; the model was validated when it was built."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


@router.get("/next", response_model=PairOut, responses={204: {"description": "no pair is waiting"}})
def next_pair(db: DbDep, settings: SettingsDep, user: CurrentUser) -> Response:
    """The caller's next pair to judge (sides in the order shown), or 204 when none is waiting."""
    shown = assignments.next_offer(db, settings, user=user)
    if shown is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    pair = PairOut(
        assignment_id=shown.assignment_id,
        pair_id=shown.pair_id,
        messages=shown.messages,
        responses={"A": shown.left.text, "B": shown.right.text},
        cut_off={"A": shown.left.cut_off, "B": shown.right.cut_off},
        lease_expires_at=shown.leased_until.isoformat(),
    )
    return _json(pair)


@router.post(
    "/judgements",
    response_model=StoredOut,
    responses={200: {"description": "a repeat of an earlier identical submission"}},
)
def submit(body: JudgementIn, db: DbDep, user: CurrentUser) -> Response:
    """Store a verdict on an assigned pair: 201 the first time, 200 for a repeat of the same submission."""
    stored = submission.submit(db, user=user, body=body)
    code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return _json(StoredOut(judgement_id=stored.judgement_id, created=stored.created), code)


class RecentOut(BaseModel):
    judgement_id: int
    assignment_id: int
    pair_id: int
    choice: str = Field(description="As shown: A (left), B (right), tie or both_bad.")
    strength: int | None
    created_at: str
    editable_until: str
    editable: bool
    edits: int = Field(description="How many times this verdict was changed.")


def _recent_out(r: edits.Recent) -> RecentOut:
    return RecentOut(
        judgement_id=r.judgement.id,
        assignment_id=r.assignment.id,
        pair_id=r.judgement.pair_id,
        choice=r.choice,
        strength=r.judgement.strength,
        created_at=r.judgement.created_at.isoformat(),
        editable_until=r.editable_until.isoformat(),
        editable=r.editable,
        edits=r.edits,
    )


@router.get("/recent", response_model=list[RecentOut])
def recent(db: DbDep, settings: SettingsDep, user: CurrentUser) -> object:
    """The caller's latest judgements, newest first, with until when each may be changed."""
    return [_recent_out(r) for r in edits.recent(db, settings, user=user)]


@router.patch("/judgements/{judgement_id}", response_model=RecentOut)
def change(
    judgement_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: JudgementChange,
    db: DbDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> object:
    """Change one's own verdict within the edit window (``RLHF_JUDGEMENT_EDIT_MINUTES``); the old one is kept
    in the judgement's history. Later: 409. Another's judgement: 404."""
    changed = edits.change(
        db, settings, user=user, judgement_id=judgement_id, choice=body.choice, strength=body.strength
    )
    return _recent_out(changed)


@router.post("/skip", status_code=status.HTTP_204_NO_CONTENT)
def skip(body: SkipIn, db: DbDep, user: CurrentUser) -> Response:
    """Pass on an assigned pair that is not judged yet."""
    assignments.skip(db, user=user, assignment_id=body.assignment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/progress", response_model=ProgressOut)
def progress(db: DbDep, user: CurrentUser) -> object:
    """Pairs the caller judged today and in all, and how many are still available to them."""
    return assignments.progress(db, user=user)


@gold_router.post("", response_model=GoldPairOut, status_code=status.HTTP_201_CREATED)
def gold_pair_create(body: GoldPairIn, db: DbDep) -> GoldPairOut:
    """An admin's gold pair: served as a share of every queue like any other, scored for reliability only."""
    pair = gold.add_written(db, prompt_id=body.prompt_id, better=body.better, worse=body.worse)
    db.commit()
    return GoldPairOut(pair_id=pair.id)
