"""Prompt sets and prompts written or changed by hand: create, list, edit, retire, mark red-team.

Bulk import lives in ``importing.py``; the rules every prompt obeys in ``validation.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.models import User
from app.errors import Conflict, NotFound
from app.lookup import get_or_404
from app.prompts import validation
from app.prompts.models import Prompt, PromptSet, PromptSetStatus, PromptSource

MAX_PAGE = 500
PAGE_SIZE = 50


class Keep(enum.Enum):
    """Marks a field an update leaves alone, where None is itself a value (k: the global setting)."""

    keep = "keep"


KEEP = Keep.keep


@dataclass(frozen=True)
class SetSummary:
    prompt_set: PromptSet
    active: int  # prompts in use
    retired: int
    red_team: int  # active prompts marked red-team


def _tally(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """Rows matching the condition, counted portably (SUM of CASE; 0 for a set without prompts)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _summary_query() -> Select[Any]:
    return (
        select(
            PromptSet,
            _tally(Prompt.retired.is_(False)),
            _tally(Prompt.retired.is_(True)),
            _tally(Prompt.red_team.is_(True) & Prompt.retired.is_(False)),
        )
        .outerjoin(Prompt, Prompt.prompt_set_id == PromptSet.id)
        .group_by(PromptSet.id)
    )


def list_sets(db: Session) -> list[SetSummary]:
    """Every set with its prompt counts, in one grouped query (not one count per set)."""
    rows = db.execute(_summary_query().order_by(PromptSet.name))
    return [SetSummary(s, int(a), int(r), int(t)) for s, a, r, t in rows]


def set_summary(db: Session, set_id: int) -> SetSummary:
    row = db.execute(_summary_query().where(PromptSet.id == set_id)).first()
    if row is None:
        raise NotFound(f"prompt set {set_id} not found")
    return SetSummary(row[0], int(row[1]), int(row[2]), int(row[3]))


def get_set(db: Session, set_id: int) -> PromptSet:
    return get_or_404(db, PromptSet, set_id, "prompt set")


def lock_set(db: Session, set_id: int) -> None:
    """Hold the set's row until commit (PostgreSQL), so concurrent writers to one set queue."""
    get_or_404(db, PromptSet, set_id, "prompt set", for_update=True)


def find_set(db: Session, name: str) -> PromptSet | None:
    return db.scalar(select(PromptSet).where(func.lower(PromptSet.name) == name.strip().lower()))


def create_set(
    db: Session,
    *,
    name: str,
    description: str = "",
    judgements_per_pair: int | str | None = None,
    status: str | PromptSetStatus = PromptSetStatus.active,
    actor: User | None = None,
    commit: bool = True,
) -> PromptSet:
    """Names are unique regardless of case, so "Red team" and "red team" cannot both exist."""
    name = validation.validate_set_name(name)
    prompt_set = PromptSet(
        name=name,
        description=validation.validate_description(description),
        judgements_per_pair=validation.validate_k(judgements_per_pair),
        status=validation.parse_status(status),
        created_by_id=actor.id if actor else None,
    )
    if find_set(db, name) is not None:
        raise Conflict(f"a prompt set named {name!r} exists", field="name")
    db.add(prompt_set)
    try:
        db.flush()
    except IntegrityError:  # created concurrently between the check and the insert
        db.rollback()
        raise Conflict(f"a prompt set named {name!r} exists", field="name") from None
    if commit:
        db.commit()
    return prompt_set


def update_set(
    db: Session,
    *,
    set_id: int,
    description: str | None = None,
    judgements_per_pair: int | str | None | Keep = KEEP,
    status: str | PromptSetStatus | None = None,
) -> PromptSet:
    """Validate every change before applying any, so a refused change writes nothing."""
    prompt_set = get_set(db, set_id)
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = validation.validate_description(description)
    if judgements_per_pair is not KEEP:
        changes["judgements_per_pair"] = validation.validate_k(judgements_per_pair)
    if status is not None:
        changes["status"] = validation.parse_status(status)
    for key, value in changes.items():
        setattr(prompt_set, key, value)
    db.commit()
    return prompt_set


def count_prompts(db: Session, set_id: int) -> int:
    """Every prompt of the set, retired ones too."""
    return db.scalar(select(func.count()).select_from(Prompt).where(Prompt.prompt_set_id == set_id)) or 0


def list_prompts(
    db: Session, *, set_id: int, retired: bool | None = None, limit: int = PAGE_SIZE, offset: int = 0
) -> tuple[list[Prompt], int]:
    """One page of a set's prompts, oldest first, and the total matching."""
    get_set(db, set_id)
    where = [Prompt.prompt_set_id == set_id]
    if retired is not None:
        where.append(Prompt.retired.is_(retired))
    total = db.scalar(select(func.count()).select_from(Prompt).where(*where)) or 0
    page = db.scalars(select(Prompt).where(*where).order_by(Prompt.id).limit(min(limit, MAX_PAGE)).offset(offset))
    return list(page), total


def get_prompt(db: Session, *, set_id: int, prompt_id: int) -> Prompt:
    return get_or_404(
        db,
        Prompt,
        prompt_id,
        where=lambda p: p.prompt_set_id == set_id,
        message=f"prompt {prompt_id} not found in set {set_id}",
    )


def _refuse_duplicate(db: Session, set_id: int, digest: str, *, other_than: int | None = None) -> None:
    query = select(Prompt.id).where(Prompt.prompt_set_id == set_id, Prompt.content_hash == digest)
    if other_than is not None:
        query = query.where(Prompt.id != other_than)
    found = db.scalar(query)
    if found is not None:
        raise Conflict(f"this conversation is already in the set as prompt #{found}", field="messages")


def add_prompt(
    db: Session,
    *,
    set_id: int,
    messages: Any,
    tags: Any = None,
    red_team: bool = False,
    actor: User | None = None,
    source: PromptSource = PromptSource.written,
) -> Prompt:
    """Add one conversation; the same conversation twice in a set is a conflict, not a copy."""
    lock_set(db, set_id)
    canonical = validation.validate_messages(messages)
    prompt = Prompt(
        prompt_set_id=set_id,
        messages=canonical,
        content_hash=validation.content_hash(canonical),
        tags=validation.validate_tags(tags if tags is not None else []),
        red_team=red_team,
        source=source,
        created_by_id=actor.id if actor else None,
    )
    _refuse_duplicate(db, set_id, prompt.content_hash)
    db.add(prompt)
    try:
        db.flush()
    except IntegrityError:  # the same conversation added concurrently
        db.rollback()
        raise Conflict("this conversation is already in the set", field="messages") from None
    db.commit()
    return prompt


def _has_responses(db: Session, prompt_id: int) -> bool:
    return bool(db.scalar(select(Prompt.responses.any()).where(Prompt.id == prompt_id)))


def _new_messages(db: Session, prompt: Prompt, messages: Any) -> tuple[list[dict[str, str]], str] | None:
    """Responses were generated for the old wording; rewording under them would mislabel them."""
    canonical = validation.validate_messages(messages)
    digest = validation.content_hash(canonical)
    if digest == prompt.content_hash:
        return None
    if _has_responses(db, prompt.id):
        raise Conflict(
            f"prompt #{prompt.id} already has generated responses; retire it and add the new wording as a new prompt",
            field="messages",
        )
    _refuse_duplicate(db, prompt.prompt_set_id, digest, other_than=prompt.id)
    return canonical, digest


def update_prompt(
    db: Session, *, set_id: int, prompt_id: int,
    # the changes; None leaves a field as it is
    messages: Any = None, tags: Any = None, red_team: bool | None = None, retired: bool | None = None,
) -> Prompt:
    """Apply any of the changes together; every one is checked before the first is applied."""
    prompt = get_prompt(db, set_id=set_id, prompt_id=prompt_id)
    reworded = _new_messages(db, prompt, messages) if messages is not None else None
    new_tags = validation.validate_tags(tags) if tags is not None else None
    if reworded is not None:
        prompt.messages, prompt.content_hash = reworded
    if new_tags is not None:
        prompt.tags = new_tags
    if red_team is not None:
        prompt.red_team = red_team
    if retired is not None:
        prompt.retired = retired
    try:
        db.commit()
    except IntegrityError:  # reworded into a conversation added concurrently
        db.rollback()
        raise Conflict("this conversation is already in the set", field="messages") from None
    return prompt
