"""Storing a judgement: the choice, both responses' labels and an optional demonstration, in one
transaction, mapped from screen sides to the real responses, exactly once.

Exactly once: the pair row is locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) while
its count is checked and raised, and the unique (pair, annotator) constraint turns a concurrent
duplicate into an IntegrityError that is answered like the first submission.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.annotation.assignment import get_assignment
from app.annotation.models import AssignmentStatus, Choice, Demonstration, DemonstrationKind, Judgement, PairAssignment, ResponseLabel
from app.annotation.schemas import JudgementIn, SideLabels
from app.auth.models import User
from app.db import utcnow
from app.errors import Conflict, Invalid
from app.pool.models import Pair, PairStatus


@dataclass(frozen=True)
class Stored:
    judgement_id: int
    created: bool  # False when this was a repeat of an earlier identical submission


def _real_choice(choice: str, swapped: bool) -> Choice:
    if choice in ("tie", "both_bad"):
        return Choice(choice)
    on_left = choice == "A"
    return Choice.a if on_left != swapped else Choice.b


def validate(body: JudgementIn) -> None:
    """Rules pydantic cannot state alone; each names the field at fault."""
    if set(body.labels) != {"A", "B"}:
        missing = sorted({"A", "B"} - set(body.labels))
        raise Invalid(f"labels.{missing[0]}", "quality and safety are required for both responses")
    if body.choice in ("A", "B") and body.strength is None:
        raise Invalid("strength", "say how much better (1 slightly, 2 clearly, 3 much) when A or B is better")
    if body.choice in ("tie", "both_bad") and body.strength is not None:
        raise Invalid("strength", f"only given when A or B is better, not with {body.choice!r}")


def _demonstration_kind(choice: str, labels: dict[str, SideLabels]) -> DemonstrationKind:
    """A written answer replaces unsafe ones → a safe answer; otherwise an ideal answer."""
    unsafe = [side for side, lab in labels.items() if lab.safety == "unsafe"]
    if len(unsafe) == 2 or (choice == "both_bad" and unsafe):
        return DemonstrationKind.safe_answer
    return DemonstrationKind.ideal


def _lock_pair(db: Session, pair_id: int) -> Pair:
    query = select(Pair).where(Pair.id == pair_id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return db.scalars(query).one()


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
    assignment = get_assignment(db, user=user, assignment_id=body.assignment_id)
    choice = _real_choice(body.choice, assignment.swapped)
    try:
        return _store(db, user, assignment, body, choice)
    except IntegrityError:
        db.rollback()  # a concurrent identical request won the race; answer as it was answered
        found = _repeat(db, pair_id=assignment.pair_id, user_id=user.id, choice=choice, strength=body.strength)
        if found is None:
            raise
        db.commit()
        return found


def _store(db: Session, user: User, assignment: PairAssignment, body: JudgementIn, choice: Choice) -> Stored:
    pair = _lock_pair(db, assignment.pair_id)
    repeat = _repeat(db, pair_id=pair.id, user_id=user.id, choice=choice, strength=body.strength)
    if repeat is not None:
        db.commit()
        return repeat
    if assignment.status is AssignmentStatus.skipped:
        raise Conflict("you skipped this pair; ask for the next one")
    if pair.status is not PairStatus.pending or pair.judgement_count >= pair.judgements_needed:
        raise Conflict("this pair already has all the judgements it needs; ask for the next one")
    now = utcnow()
    seconds = max(0.0, (now - assignment.assigned_at).total_seconds())
    judgement = Judgement(
        pair_id=pair.id, annotator_id=user.id, choice=choice, strength=body.strength, seconds=seconds, note=body.note.strip()
    )
    db.add(judgement)
    db.flush()
    _store_labels(db, user, assignment, judgement, body.labels, pair)
    if body.demonstration.strip():
        kind = _demonstration_kind(body.choice, body.labels)
        db.add(Demonstration(prompt_id=pair.prompt_id, annotator_id=user.id, judgement_id=judgement.id, text=body.demonstration.strip(), kind=kind))
    pair.judgement_count += 1
    if pair.judgement_count >= pair.judgements_needed:
        pair.status = PairStatus.complete
    assignment.status = AssignmentStatus.submitted
    db.commit()
    return Stored(judgement_id=judgement.id, created=True)


def _store_labels(db: Session, user: User, assignment: PairAssignment, judgement: Judgement, labels: dict[str, SideLabels], pair: Pair) -> None:
    """One label row per (response, annotator): a response seen again updates its labels."""
    left, right = (pair.response_b_id, pair.response_a_id) if assignment.swapped else (pair.response_a_id, pair.response_b_id)
    rows = [
        {"response_id": rid, "annotator_id": user.id, "judgement_id": judgement.id, "quality": labels[side].quality == "good",
         "safety": labels[side].safety == "safe", "created_at": utcnow()}
        for side, rid in (("A", left), ("B", right))
    ]
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(ResponseLabel).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["response_id", "annotator_id"],
        set_={"quality": statement.excluded.quality, "safety": statement.excluded.safety, "judgement_id": statement.excluded.judgement_id},
    )
    db.execute(statement)
