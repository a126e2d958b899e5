"""An annotator changing their own recent verdicts: the "recent" list and one change, with its history.

A slip of the key is common at the speed annotators work, and before this a verdict was final (a second
submission with another choice is a 409, on purpose: a retry must never change data). So a change is its
own action, on a judgement by id: allowed to its author within ``judgement_edit_minutes`` of making it,
written as a ``JudgementEdit`` row (old → new, who, when) beside the updated judgement, in one
transaction. Choices are in screen terms ("A" is what was on the left), mapped through the pair's
assignment exactly as a submission is; a judgement with no assignment (imported) cannot be changed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.annotation.models import Choice, Judgement, JudgementEdit, PairAssignment
from app.annotation.schemas import ScreenChoice
from app.annotation.submission import check_strength, real_choice
from app.auth.models import User
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, NotFound

RECENT_LIMIT = 20
# A judgement with the assignment it was made through (its sides as shown).
_OWN = select(Judgement, PairAssignment).join(
    PairAssignment,
    (PairAssignment.pair_id == Judgement.pair_id) & (PairAssignment.user_id == Judgement.annotator_id),
)


@dataclass(frozen=True)
class Recent:
    """One of the annotator's judgements as they saw it: the verdict in screen terms and until when it may change."""

    judgement: Judgement
    assignment: PairAssignment
    choice: ScreenChoice
    editable_until: datetime
    edits: int

    @property
    def editable(self) -> bool:
        return self.editable_until > utcnow()


def screen_choice(choice: Choice, swapped: bool) -> ScreenChoice:
    """The stored (real) choice as the annotator saw it: the inverse of ``submission.real_choice``."""
    if choice in (Choice.tie, Choice.both_bad):
        return choice.value  # type: ignore[return-value]
    on_left = (choice is Choice.a) != swapped
    return "A" if on_left else "B"


def _window(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.judgement_edit_minutes)


def _recent(db: Session, settings: Settings, judgement: Judgement, assignment: PairAssignment) -> Recent:
    edits = db.scalars(select(JudgementEdit.id).where(JudgementEdit.judgement_id == judgement.id)).all()
    return Recent(
        judgement=judgement,
        assignment=assignment,
        choice=screen_choice(judgement.choice, assignment.swapped),
        editable_until=judgement.created_at + _window(settings),
        edits=len(edits),
    )


def recent(db: Session, settings: Settings, *, user: User, limit: int = RECENT_LIMIT) -> list[Recent]:
    """The user's latest judgements made through an assignment, newest first (editable or not)."""
    rows = db.execute(
        _OWN.where(Judgement.annotator_id == user.id)
        .order_by(Judgement.created_at.desc(), Judgement.id.desc())
        .limit(limit)
    ).all()
    return [_recent(db, settings, judgement, assignment) for judgement, assignment in rows]


def for_assignment(db: Session, settings: Settings, *, user: User, assignment: PairAssignment) -> Recent | None:
    """The user's judgement of the pair behind ``assignment``, if they judged it."""
    judgement = db.scalar(
        select(Judgement).where(Judgement.pair_id == assignment.pair_id, Judgement.annotator_id == user.id)
    )
    return None if judgement is None else _recent(db, settings, judgement, assignment)


def by_id(db: Session, settings: Settings, *, user: User, judgement_id: int) -> Recent:
    """The user's own judgement ``judgement_id`` (404 for anyone else's, or one made without an assignment)."""
    row = db.execute(_OWN.where(Judgement.id == judgement_id, Judgement.annotator_id == user.id)).one_or_none()
    if row is None:
        raise NotFound(f"judgement {judgement_id} is not one of yours")
    return _recent(db, settings, *row)


def change(
    db: Session, settings: Settings, *, user: User, judgement_id: int, choice: ScreenChoice, strength: int | None
) -> Recent:
    """Change the user's own judgement within the window; an unchanged verdict writes nothing."""
    check_strength(choice, strength)
    row = db.execute(
        _OWN.where(Judgement.id == judgement_id, Judgement.annotator_id == user.id).with_for_update(of=Judgement)
    ).one_or_none()
    if row is None:
        raise NotFound(f"judgement {judgement_id} is not one of yours")
    judgement, assignment = row
    if judgement.created_at + _window(settings) <= utcnow():
        minutes = f"{settings.judgement_edit_minutes:g}"
        raise Conflict(f"judgement {judgement_id} can no longer be changed: the {minutes}-minute window has passed")
    new_choice = real_choice(choice, assignment.swapped)
    if (new_choice, strength) != (judgement.choice, judgement.strength):
        db.add(
            JudgementEdit(
                judgement_id=judgement.id,
                editor_id=user.id,
                old_choice=judgement.choice,
                old_strength=judgement.strength,
                new_choice=new_choice,
                new_strength=strength,
            )
        )
        judgement.choice, judgement.strength = new_choice, strength
    db.commit()
    return _recent(db, settings, judgement, assignment)


def history(db: Session, *, judgement_id: int) -> list[JudgementEdit]:
    """Every change of a judgement, oldest first."""
    return list(
        db.scalars(select(JudgementEdit).where(JudgementEdit.judgement_id == judgement_id).order_by(JudgementEdit.id))
    )
