"""Which pair an annotator sees next, leased to them for a while, with randomised sides.

A pair is offered to a user who has not judged or skipped it, while it still needs judgements
and fewer than k other people hold a live lease on it. On PostgreSQL the candidate pair row is
locked with SKIP LOCKED, so concurrent annotators never count the same free slot twice; on
SQLite every write transaction is serialised (BEGIN IMMEDIATE) to the same effect.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from app.annotation.models import AssignmentStatus, Judgement, PairAssignment
from app.auth.models import User
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.pool.models import Pair, PairStatus, Response
from app.prompts.models import Prompt


@dataclass(frozen=True)
class Shown:
    """A leased pair as the annotator sees it: responses in screen order."""

    assignment: PairAssignment
    pair: Pair
    messages: list[dict[str, str]]
    left: Response  # shown as "A"
    right: Response  # shown as "B"


@dataclass(frozen=True)
class Progress:
    judged_today: int
    judged_total: int
    remaining: int


def _live_leases(user_id: int, now: datetime):  # noqa: ANN202 - a scalar subquery
    return (
        select(func.count())
        .where(
            PairAssignment.pair_id == Pair.id,
            PairAssignment.status == AssignmentStatus.active,
            PairAssignment.leased_until > now,
            PairAssignment.user_id != user_id,
        )
        .correlate(Pair)
        .scalar_subquery()
    )


def _done_by_user(user_id: int):  # noqa: ANN202
    return exists().where(
        PairAssignment.pair_id == Pair.id,
        PairAssignment.user_id == user_id,
        PairAssignment.status.in_((AssignmentStatus.skipped, AssignmentStatus.submitted)),
    )


def available_pairs(user_id: int, now: datetime):  # noqa: ANN201 - a Select
    """Pairs this user may be offered now, oldest first."""
    return (
        select(Pair)
        .where(
            Pair.status == PairStatus.pending,
            Pair.judgement_count < Pair.judgements_needed,
            ~_done_by_user(user_id),
            Pair.judgement_count + _live_leases(user_id, now) < Pair.judgements_needed,
        )
        .order_by(Pair.id)
    )


def _current(db: Session, user: User, now: datetime) -> PairAssignment | None:
    """A live lease the user already holds on a pair that still needs judgements (a reload)."""
    return db.scalar(
        select(PairAssignment)
        .join(Pair, Pair.id == PairAssignment.pair_id)
        .where(
            PairAssignment.user_id == user.id,
            PairAssignment.status == AssignmentStatus.active,
            PairAssignment.leased_until > now,
            Pair.status == PairStatus.pending,
            Pair.judgement_count < Pair.judgements_needed,
        )
        .order_by(PairAssignment.id)
        .limit(1)
    )


def next_pair(db: Session, settings: Settings, *, user: User) -> Shown | None:
    """Lease the user's next pair (or return the one they hold); None when nothing is left."""
    now = utcnow()
    assignment = _current(db, user, now)
    if assignment is None:
        query = available_pairs(user.id, now).limit(1)
        if db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=Pair, skip_locked=True)
        pair = db.scalar(query)
        if pair is None:
            db.commit()
            return None
        assignment = _lease(db, settings, user, pair, now)
    shown = load_shown(db, assignment)
    db.commit()
    return shown


def _lease(db: Session, settings: Settings, user: User, pair: Pair, now: datetime) -> PairAssignment:
    until = now + timedelta(minutes=settings.assignment_lease_minutes)
    assignment = db.scalar(select(PairAssignment).where(PairAssignment.pair_id == pair.id, PairAssignment.user_id == user.id))
    if assignment is None:  # first time this user sees the pair
        assignment = PairAssignment(pair_id=pair.id, user_id=user.id, swapped=secrets.randbelow(2) == 1)
        db.add(assignment)
    assignment.status = AssignmentStatus.active
    assignment.assigned_at = now
    assignment.leased_until = until
    db.flush()
    return assignment


def load_shown(db: Session, assignment: PairAssignment) -> Shown:
    """The pair, its prompt and both responses in one round trip."""
    response_a, response_b = aliased(Response), aliased(Response)
    pair, messages, a, b = db.execute(
        select(Pair, Prompt.messages, response_a, response_b)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(response_a, response_a.id == Pair.response_a_id)
        .join(response_b, response_b.id == Pair.response_b_id)
        .where(Pair.id == assignment.pair_id)
    ).one()
    left, right = (b, a) if assignment.swapped else (a, b)
    return Shown(assignment=assignment, pair=pair, messages=list(messages), left=left, right=right)


def get_assignment(db: Session, *, user: User, assignment_id: int) -> PairAssignment:
    assignment = db.get(PairAssignment, assignment_id)
    if assignment is None or assignment.user_id != user.id:
        raise NotFound(f"assignment {assignment_id} is not assigned to you")
    return assignment


def skip(db: Session, *, user: User, assignment_id: int) -> None:
    assignment = get_assignment(db, user=user, assignment_id=assignment_id)
    if assignment.status is AssignmentStatus.submitted:
        raise Conflict("this pair is already judged; it cannot be skipped")
    assignment.status = AssignmentStatus.skipped
    db.commit()


def progress(db: Session, *, user: User) -> Progress:
    now = utcnow()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    by_user = select(func.count()).select_from(Judgement).where(Judgement.annotator_id == user.id)
    today = db.scalar(by_user.where(Judgement.created_at >= midnight)) or 0
    total = db.scalar(by_user) or 0
    remaining = db.scalar(select(func.count()).select_from(available_pairs(user.id, now).order_by(None).subquery())) or 0
    return Progress(judged_today=today, judged_total=total, remaining=remaining)


def lease_is_live(assignment: PairAssignment) -> bool:
    return assignment.status is AssignmentStatus.active and assignment.leased_until > utcnow()


__all__ = ["Progress", "Shown", "available_pairs", "get_assignment", "lease_is_live", "load_shown", "next_pair", "progress", "skip"]
