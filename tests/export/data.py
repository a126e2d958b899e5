"""Building judged pairs for export and dashboard tests, on the test's rolled-back session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.annotation.models import Choice, Demonstration, Judgement, ResponseLabel
from app.auth.models import User
from app.pool.models import Pair, Response
from app.prompts.models import Prompt, PromptSet
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


# The hand-worked three-response example (tests/ratings/test_elo.py): x beats y, y beats z, x ties z.
THREE_GAMES = (("x", "y", "a"), ("y", "z", "a"), ("x", "z", "tie"))


def rated_prompt(
    db: Session, games: Sequence[tuple[str, str, str]] = THREE_GAMES, *, prompt_set: PromptSet | None = None
) -> tuple[Prompt, dict[str, Response], list[Pair]]:
    """One prompt, one response per text named in ``games`` and a pair per game (A the first named), each
    judged once in the order given by one annotator."""
    prompt = PromptFactory(prompt_set=prompt_set or PromptSetFactory())
    responses: dict[str, Response] = {}
    for a, b, _ in games:
        for text in (a, b):
            if text not in responses:
                responses[text] = Response(prompt_id=prompt.id, text=text)
                db.add(responses[text])
    db.flush()
    annotator, pairs = UserFactory(), []
    for a, b, choice in games:
        pair = Pair(prompt_id=prompt.id, response_a_id=responses[a].id, response_b_id=responses[b].id)
        db.add(pair)
        db.flush()
        db.add(Judgement(pair_id=pair.id, annotator_id=annotator.id, choice=Choice(choice), strength=2))
        db.flush()
        pairs.append(pair)
    return prompt, responses, pairs
