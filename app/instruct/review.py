"""The review of SELF-INSTRUCT output: candidates wait in a 'review' set until an admin decides.

A kept candidate is stored as a prompt that is *retired* and tagged ``review:pending``, in a set
whose status is ``review``; the pool draws only non-retired prompts of active sets, so nothing
machine-written reaches annotators unseen. An admin then decides, one by one or in bulk:

- approve → the prompt is un-retired (tag removed) and the set becomes ``active``: it feeds the pool;
- reject → the prompt stays retired, tagged ``review:rejected``; a set left with no approved and no
  pending prompt is itself retired.

A decision may be changed later (approve a rejected prompt, or reject an approved one). The state
lives in the existing columns (``retired``, ``tags``, the set's ``status``): no schema of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.errors import Invalid, NotFound
from app.prompts import service as prompts
from app.prompts.models import Prompt, PromptSet, PromptSetStatus, PromptSource
from app.prompts.validation import content_hash, single_turn

SOURCE_TAG = "self-instruct"
PENDING_TAG = "review:pending"
REJECTED_TAG = "review:rejected"
MAX_DECISION_IDS = 1000


class ReviewState(enum.StrEnum):
    """Where a machine-written prompt stands; kept as a tag on the prompt, so review needs no column."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Decision(enum.StrEnum):
    """What a reviewer may do to pending prompts: approval un-retires one, rejection keeps it retired, tagged."""

    approve = "approve"
    reject = "reject"


@dataclass(frozen=True)
class ReviewSummary:
    prompt_set: PromptSet
    pending: int
    approved: int
    rejected: int


@dataclass(frozen=True)
class DecisionReport:
    decision: Decision
    changed: int  # prompts whose state this decision changed
    set_status: PromptSetStatus  # the set's status afterwards


def state_of(prompt: Prompt) -> ReviewState:
    """Where a machine-written prompt stands in the review. A prompt in use counts as approved whatever
    its tags say (an admin may also un-retire it on the prompt set's page)."""
    if not prompt.retired:
        return ReviewState.approved
    return ReviewState.pending if PENDING_TAG in prompt.tags else ReviewState.rejected


def create_review_set(db: Session, *, name: str, description: str, actor: User | None = None) -> PromptSet:
    """A new, empty set in the ``review`` state (flushed; the caller commits)."""
    return prompts.create_set(
        db, name=name, description=description, status=PromptSetStatus.review, actor=actor, commit=False
    )


def add_candidates(db: Session, *, set_id: int, texts: Sequence[str]) -> int:
    """Store kept candidates as pending prompts (flushed, not committed); returns how many were new.

    A text the set already holds is skipped, so a job re-run after a crash does not add it twice."""
    prompts.lock_set(db, set_id)
    existing = set(db.scalars(select(Prompt.content_hash).where(Prompt.prompt_set_id == set_id)))
    added = 0
    for text in texts:
        messages = single_turn(text)
        digest = content_hash(messages)
        if digest in existing:
            continue
        existing.add(digest)
        db.add(
            Prompt(
                prompt_set_id=set_id,
                messages=messages,
                content_hash=digest,
                source=PromptSource.self_instruct,
                tags=[SOURCE_TAG, PENDING_TAG],
                retired=True,
            )
        )
        added += 1
    db.flush()
    return added


def _pending_condition():  # noqa: ANN202 - a SQL expression
    """Retired and tagged ``review:pending`` (a text match on the JSON, the same on SQLite and PostgreSQL)."""
    return Prompt.retired.is_(True) & cast(Prompt.tags, String).like(f'%"{PENDING_TAG}"%')


def list_review_sets(db: Session) -> list[ReviewSummary]:
    """Sets holding SELF-INSTRUCT prompts, newest first, with their review counts (one grouped query)."""
    pending = _pending_condition()
    rows = db.execute(
        select(
            PromptSet,
            func.sum(case((pending, 1), else_=0)),
            func.sum(case((Prompt.retired.is_(False), 1), else_=0)),
            func.sum(case((Prompt.retired.is_(True) & ~pending, 1), else_=0)),
        )
        .join(Prompt, Prompt.prompt_set_id == PromptSet.id)
        .where(Prompt.source == PromptSource.self_instruct)
        .group_by(PromptSet.id)
        .order_by(PromptSet.id.desc())
    )
    return [ReviewSummary(s, int(p or 0), int(a or 0), int(r or 0)) for s, p, a, r in rows]


def review_summary(db: Session, set_id: int) -> ReviewSummary:
    prompt_set = prompts.get_set(db, set_id)
    states = [state_of(p) for p in _machine_prompts(db, set_id)]
    return ReviewSummary(
        prompt_set,
        states.count(ReviewState.pending),
        states.count(ReviewState.approved),
        states.count(ReviewState.rejected),
    )


def _machine_prompts(db: Session, set_id: int) -> list[Prompt]:
    return list(
        db.scalars(
            select(Prompt)
            .where(Prompt.prompt_set_id == set_id, Prompt.source == PromptSource.self_instruct)
            .order_by(Prompt.id)
        )
    )


def review_prompts(db: Session, set_id: int) -> list[tuple[Prompt, ReviewState]]:
    """The set's machine-written prompts with their review state, oldest first."""
    prompts.get_set(db, set_id)
    return [(p, state_of(p)) for p in _machine_prompts(db, set_id)]


def decide(
    db: Session, *, set_id: int, decision: Decision | str, prompt_ids: Sequence[int] | None = None
) -> DecisionReport:
    """Approve or reject the given prompts (any state), or every pending one when ``prompt_ids`` is None.

    Every id is checked before anything changes, so a bad id writes nothing. Commits."""
    decision = _parse_decision(decision)
    prompts.lock_set(db, set_id)
    chosen = _chosen(db, set_id, prompt_ids)
    changed = sum(_apply(prompt, decision) for prompt in chosen)
    prompt_set = prompts.get_set(db, set_id)
    prompt_set.status = _status_after(db, prompt_set)
    db.commit()
    return DecisionReport(decision, changed, prompt_set.status)


def _parse_decision(value: Decision | str) -> Decision:
    try:
        return Decision(value)
    except ValueError:
        raise Invalid("decision", "must be 'approve' or 'reject'") from None


def _chosen(db: Session, set_id: int, prompt_ids: Sequence[int] | None) -> list[Prompt]:
    machine = _machine_prompts(db, set_id)
    if prompt_ids is None:
        return [p for p in machine if state_of(p) is ReviewState.pending]
    if not prompt_ids:
        raise Invalid("prompt_ids", "choose at least one prompt")
    if len(prompt_ids) > MAX_DECISION_IDS:
        raise Invalid("prompt_ids", f"at most {MAX_DECISION_IDS} prompts per decision")
    by_id = {p.id: p for p in machine}
    missing = [i for i in prompt_ids if i not in by_id]
    if missing:
        raise NotFound(f"prompt {missing[0]} is not a SELF-INSTRUCT prompt of set {set_id}")
    return [by_id[i] for i in dict.fromkeys(prompt_ids)]


def _apply(prompt: Prompt, decision: Decision) -> bool:
    """Set one prompt's state; True when it changed."""
    before = state_of(prompt)
    kept = [tag for tag in prompt.tags if tag not in (PENDING_TAG, REJECTED_TAG)]
    if decision is Decision.approve:
        prompt.tags, prompt.retired = kept, False
    else:
        prompt.tags, prompt.retired = [*kept, REJECTED_TAG], True
    return state_of(prompt) is not before


def _status_after(db: Session, prompt_set: PromptSet) -> PromptSetStatus:
    """Active once anything is approved; retired when all is rejected; otherwise as it was."""
    db.flush()
    states = [state_of(p) for p in _machine_prompts(db, prompt_set.id)]
    if ReviewState.approved in states:
        return PromptSetStatus.active
    if states and ReviewState.pending not in states:
        return PromptSetStatus.retired
    return prompt_set.status
