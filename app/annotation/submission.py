"""Storing a judgement: the choice, both responses' labels and an optional demonstration, in one
transaction, mapped from screen sides to the real responses, exactly once.

Exactly once: the pair row is locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) while
its count is checked and raised, and the unique (pair, annotator) constraint turns a concurrent
duplicate into an IntegrityError that is answered like the first submission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.annotation.assignment import LEASED_STATUSES, lease_is_live
from app.annotation.models import (
    AssignmentStatus,
    Choice,
    Demonstration,
    DemonstrationKind,
    Judgement,
    PairAssignment,
    ResponseLabel,
)
from app.annotation.schemas import JudgementIn, SideLabels
from app.auth.models import User
from app.db import upsert_insert, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.pool.models import Pair, PairStatus


@dataclass(frozen=True)
class Stored:
    judgement_id: int
    created: bool  # False when this was a repeat of an earlier identical submission


def real_choice(choice: str, swapped: bool) -> Choice:
    """A choice in screen terms ("A": the left answer) as the stored choice of the real responses."""
    if choice in ("tie", "both_bad"):
        return Choice(choice)
    on_left = choice == "A"
    return Choice.a if on_left != swapped else Choice.b


def validate(body: JudgementIn) -> None:
    """Rules pydantic cannot state alone; each names the field at fault."""
    if set(body.labels) != {"A", "B"}:
        missing = sorted({"A", "B"} - set(body.labels))
        raise Invalid(f"labels.{missing[0]}", "quality and safety are required for both responses")
    check_strength(body.choice, body.strength)


def check_strength(choice: str, strength: int | None) -> None:
    """A or B comes with how much better; a tie or both-bad with none (a submission's rule and an edit's)."""
    if choice in ("A", "B") and strength is None:
        raise Invalid("strength", "say how much better (1 slightly, 2 clearly, 3 much) when A or B is better")
    if choice in ("tie", "both_bad") and strength is not None:
        raise Invalid("strength", f"only given when A or B is better, not with {choice!r}")


def _demonstration_kind(choice: str, labels: dict[str, SideLabels]) -> DemonstrationKind:
    """A written answer replaces unsafe ones → a safe answer; otherwise an ideal answer."""
    unsafe = [side for side, lab in labels.items() if lab.safety == "unsafe"]
    if len(unsafe) == 2 or (choice == "both_bad" and unsafe):
        return DemonstrationKind.safe_answer
    return DemonstrationKind.ideal


_LOCKED = (
    select(PairAssignment, Pair)
    .join(Pair, Pair.id == PairAssignment.pair_id)
    .where(PairAssignment.id == bindparam("assignment_id"))
)
_LOCKED_FOR_UPDATE = (
    _LOCKED.with_for_update()
)  # PostgreSQL: both rows, so a concurrent submission waits, then sees the fresh count


def _locked(db: Session, *, user: User, assignment_id: int) -> tuple[PairAssignment, Pair]:
    """The user's assignment and its pair in one statement (built once: see assignment.py)."""
    query = _LOCKED_FOR_UPDATE if db.get_bind().dialect.name == "postgresql" else _LOCKED
    row = db.execute(query, {"assignment_id": assignment_id}, execution_options={"populate_existing": True}).first()
    if row is None or row[0].user_id != user.id:
        raise NotFound(f"assignment {assignment_id} is not assigned to you")
    return row[0], row[1]


def _same_as(existing: Judgement, choice: Choice, strength: int | None) -> bool:
    return existing.choice is choice and existing.strength == strength


def _repeat(db: Session, *, pair_id: int, user_id: int, choice: Choice, strength: int | None) -> Stored | None:
    existing = db.scalar(select(Judgement).where(Judgement.pair_id == pair_id, Judgement.annotator_id == user_id))
    if existing is None:
        return None
    if not _same_as(existing, choice, strength):
        raise Conflict(f"you already judged this pair (judgement {existing.id}) differently")
    return Stored(judgement_id=existing.id, created=False)


def submit(db: Session, *, user: User, body: JudgementIn) -> Stored:
    validate(body)
    assignment, pair = _locked(db, user=user, assignment_id=body.assignment_id)
    choice = real_choice(body.choice, assignment.swapped)
    try:
        return _store(db, user, assignment, pair, body, choice)
    except IntegrityError:
        db.rollback()  # a concurrent identical request won the race; answer as it was answered
        found = _repeat(db, pair_id=assignment.pair_id, user_id=user.id, choice=choice, strength=body.strength)
        if found is None:
            raise
        db.commit()
        return found


# The writes of a judgement as Core statements on the tables, built once: the ORM's unit of work
# costs several times what these statements do, and nothing here needs objects back.
_JUDGEMENTS, _PAIRS, _ASSIGNMENTS = Judgement.__table__, Pair.__table__, PairAssignment.__table__
_INSERT_JUDGEMENT = insert(_JUDGEMENTS).returning(_JUDGEMENTS.c.id)
_COUNT_UP = (
    update(_PAIRS)
    .where(_PAIRS.c.id == bindparam("pair_id"))
    .values(
        judgement_count=_PAIRS.c.judgement_count + 1,
        status=case(
            (_PAIRS.c.judgement_count + 1 >= _PAIRS.c.judgements_needed, PairStatus.complete.value),
            else_=_PAIRS.c.status,
        ),
    )
)
_MARK_SUBMITTED = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment_id"))
    .values(status=AssignmentStatus.submitted.value)
)


_LIVE_LEASES_OF_OTHERS = select(func.count()).where(
    PairAssignment.pair_id == bindparam("pair_id"),
    PairAssignment.status == AssignmentStatus.active,
    PairAssignment.leased_until > bindparam("now"),
    PairAssignment.user_id != bindparam("user_id"),
)


def _slot_taken_by_others(db: Session, *, user: User, pair: Pair, now: datetime) -> bool:
    """A lapsed lease still counts while the pair has room for it; once others' live leases fill
    what the pair still needs, its slot went to someone else and this judgement would be one too many."""
    others = db.scalar(_LIVE_LEASES_OF_OTHERS, {"pair_id": pair.id, "now": now, "user_id": user.id}) or 0
    return pair.judgement_count + others >= pair.judgements_needed


def _store(
    db: Session, user: User, assignment: PairAssignment, pair: Pair, body: JudgementIn, choice: Choice
) -> Stored:
    if assignment.status is not AssignmentStatus.active:  # the happy path needs no look-up of an earlier judgement
        repeat = _repeat(db, pair_id=pair.id, user_id=user.id, choice=choice, strength=body.strength)
        if repeat is not None:
            db.commit()
            return repeat
        if assignment.status is AssignmentStatus.skipped:
            raise Conflict("you skipped this pair; ask for the next one")
    if pair.status not in LEASED_STATUSES or pair.judgement_count >= pair.judgements_needed:
        raise Conflict("this pair already has all the judgements it needs; ask for the next one")
    now = utcnow()
    if not lease_is_live(assignment) and _slot_taken_by_others(db, user=user, pair=pair, now=now):
        raise Conflict("your lease on this pair expired and the pair was given to someone else; ask for the next one")
    seconds = max(0.0, (now - assignment.assigned_at).total_seconds())
    judgement_id = db.execute(
        _INSERT_JUDGEMENT,
        {
            "pair_id": pair.id,
            "annotator_id": user.id,
            "choice": choice,
            "strength": body.strength,
            "seconds": seconds,
            "note": body.note.strip(),
            "created_at": now,
        },
    ).scalar_one()
    _store_labels(db, user, assignment, judgement_id, body.labels, pair)
    if body.demonstration.strip():
        kind = _demonstration_kind(body.choice, body.labels)
        db.add(
            Demonstration(
                prompt_id=pair.prompt_id,
                annotator_id=user.id,
                judgement_id=judgement_id,
                text=body.demonstration.strip(),
                kind=kind,
            )
        )
    db.execute(_COUNT_UP, {"pair_id": pair.id})
    db.execute(_MARK_SUBMITTED, {"assignment_id": assignment.id})
    db.commit()
    db.expire(pair)  # changed behind the ORM's back: reload on next use
    db.expire(assignment)
    return Stored(judgement_id=judgement_id, created=True)


def _store_labels(
    db: Session, user: User, assignment: PairAssignment, judgement_id: int, labels: dict[str, SideLabels], pair: Pair
) -> None:
    """One label row per (response, annotator): a response seen again updates its labels."""
    left, right = (
        (pair.response_b_id, pair.response_a_id) if assignment.swapped else (pair.response_a_id, pair.response_b_id)
    )
    rows = [
        {
            "response_id": rid,
            "annotator_id": user.id,
            "judgement_id": judgement_id,
            "quality": labels[side].quality == "good",
            "safety": labels[side].safety == "safe",
            "created_at": utcnow(),
        }
        for side, rid in (("A", left), ("B", right))
    ]
    db.execute(_labels_upsert(db.get_bind().dialect.name), rows)


@cache
def _labels_upsert(dialect: str):  # noqa: ANN202 - built once per backend; executed with the rows as parameters
    statement = upsert_insert(dialect, ResponseLabel)
    return statement.on_conflict_do_update(
        index_elements=["response_id", "annotator_id"],
        set_={
            "quality": statement.excluded.quality,
            "safety": statement.excluded.safety,
            "judgement_id": statement.excluded.judgement_id,
        },
    )
