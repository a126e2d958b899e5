"""Building judged pairs for export and dashboard tests, on the test's rolled-back session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.annotation.models import Choice, Demonstration, Judgement, ResponseLabel
from app.auth.models import User
from app.pool.models import Pair, Response
from app.prompts.models import PromptSet
from tests.factories import PromptFactory, PromptSetFactory, UserFactory

Verdict = tuple[User, str]  # (annotator, choice)


def judged_pair(
    db: Session,
    *,
    messages: list[dict[str, str]] | None = None,
    a: str = "answer A",
    b: str = "answer B",
    verdicts: Sequence[Verdict] = (),
    versions: tuple[int | None, int | None] = (None, None),
    prompt_set: PromptSet | None = None,
    when: datetime | None = None,
    seconds: float | None = 5.0,
) -> Pair:
    """A prompt, two responses, a pair and one judgement per verdict."""
    kwargs = {"prompt_set": prompt_set or PromptSetFactory()}
    if messages is not None:
        kwargs["messages"] = messages
    prompt = PromptFactory(**kwargs)
    ra = Response(prompt_id=prompt.id, text=a, policy_version_id=versions[0])
    rb = Response(prompt_id=prompt.id, text=b, policy_version_id=versions[1])
    db.add_all([ra, rb])
    db.flush()
    pair = Pair(
        prompt_id=prompt.id,
        response_a_id=ra.id,
        response_b_id=rb.id,
        judgements_needed=max(len(verdicts), 1),
        judgement_count=len(verdicts),
        cross_version=versions[0] != versions[1],
    )
    db.add(pair)
    db.flush()
    for user, choice in verdicts:
        judgement = Judgement(pair_id=pair.id, annotator_id=user.id, choice=Choice(choice), strength=2, seconds=seconds)
        if when is not None:
            judgement.created_at = when
        db.add(judgement)
    db.flush()
    return pair


def label(db: Session, user: User, response_id: int, *, quality: bool, safety: bool) -> ResponseLabel:
    row = ResponseLabel(response_id=response_id, annotator_id=user.id, quality=quality, safety=safety)
    db.add(row)
    db.flush()
    return row


def demonstration(db: Session, user: User, prompt_id: int, text: str) -> Demonstration:
    row = Demonstration(prompt_id=prompt_id, annotator_id=user.id, text=text)
    db.add(row)
    db.flush()
    return row


def annotators(n: int) -> list[User]:
    return [UserFactory() for _ in range(n)]
